/* html_page.c — the frame of index.html: head, style sheet, navigation, and the page's
 * one small inline script (sortable tables, metric and example switching, the head view
 * drawn from each example's embedded JSON, the
 * layer switch of the patch-grid head view). No network: nothing is fetched. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "report/report.h"
#include "report/svg.h"

static const char *const css =
    "body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#fff}"
    "header{background:#263238;color:#fff;padding:10px 18px}header "
    "h1{margin:0;font-size:20px}"
    "nav{position:sticky;top:0;background:#eceff1;padding:6px 18px;z-index:2;"
    "border-bottom:1px solid #cfd8dc}nav a{margin-right:14px;color:#1a237e}"
    "section{padding:6px 18px 18px;border-bottom:1px solid #eee}h2{font-size:18px}"
    "h3{font-size:15px;margin:14px 0 4px}table{border-collapse:collapse;margin:4px 0}"
    "td,th{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:middle}"
    "th{background:#f5f5f5}table.sortable th{cursor:pointer}table.sortable th:after"
    "{content:' \\2195';color:#999}.num{text-align:right;font-variant-numeric:tabular-nums;"
    "white-space:nowrap}"
    ".grid{display:flex;flex-wrap:wrap;gap:18px}.card{border:1px solid #e0e0e0;padding:6px;"
    "border-radius:4px}.tk{font-size:10px;fill:#333}.ax{font-size:11px;fill:#000}"
    ".bars{fill:#5c6bc0}.spark .bars{fill:#7986cb}.axis{fill:none;stroke:#999}"
    ".line{fill:none;stroke:#3949ab;stroke-width:1.5}.wh{stroke:#555}.bx{fill:#c5cae9;"
    "stroke:#3949ab}.md{stroke:#b71c1c;stroke-width:2}.note{background:#fff8e1;"
    "border-left:4px solid #ffb300;padding:6px "
    "10px}ul.note{padding-left:28px}.drift{background:#ffebee}"
    ".tv{overflow-x:auto;max-width:100%}.tv td{white-space:pre;font-family:monospace;"
    "font-size:12px;border:1px solid #fff;padding:1px 3px}.tv td.d{color:#fff}"
    ".tv th{font-weight:normal;white-space:nowrap}img.strip{image-rendering:pixelated;"
    "height:14px;display:block}.example{border:1px solid #c5cae9;padding:8px;margin:10px 0}"
    ".example[hidden]{display:none}img.px{image-rendering:pixelated}"
    ".hv svg text{font:11px monospace;fill:#222}.hv line{stroke:#1e88e5}"
    "ol.top{margin:4px 0;padding-left:22px;font-size:12px}"
    ".hgl{display:flex;flex-wrap:wrap;gap:8px;margin-top:4px}.hgl[hidden]{display:none}"
    ".hg{font-size:11px}.hg svg{display:block}.hgp{font-family:monospace}"
    ".gen .tv th.vt{writing-mode:vertical-rl;font-family:monospace;font-size:11px}"
    ".gen .tv td{min-width:12px;height:14px;padding:0}";

/* Sorting, switching and the head view; DOM text is set with textContent only. */
static const char *const js =
    "(function(){'use strict';\n"
    "function val(td){var v=td.getAttribute('data-v');if(v===null)v=td.textContent;"
    "var f=parseFloat(v);return isNaN(f)?v.toLowerCase():f;}\n"
    "document.querySelectorAll('table.sortable').forEach(function(t){"
    "t.querySelectorAll('th').forEach(function(th,c){var asc=true;"
    "th.addEventListener('click',function(){var b=t.tBodies[0];"
    "var rows=Array.prototype.slice.call(b.rows);rows.sort(function(x,y){"
    "var a=val(x.cells[c]),z=val(y.cells[c]);if(a===z)return 0;"
    "if(typeof a!==typeof z)return (typeof a==='number'?-1:1)*(asc?1:-1);"
    "return (a<z?-1:1)*(asc?1:-1);});asc=!asc;"
    "rows.forEach(function(r){b.appendChild(r);});});});});\n"
    "var ms=document.getElementById('metric');function metric(){if(!ms)return;"
    "document.querySelectorAll('.metric-block').forEach(function(d){"
    "d.hidden=d.getAttribute('data-metric')!==ms.value;});}"
    "if(ms){ms.addEventListener('change',metric);metric();}\n"
    "function show(){var ex=document.querySelectorAll('.example');if(!ex.length)return;"
    "var id=location.hash.slice(1)||new "
    "URLSearchParams(location.search).get('ex')||'',hit=null;ex.forEach(function(e){if(e."
    "id===id)hit=e;});"
    "if(!hit)hit=ex[0];ex.forEach(function(e){e.hidden=e!==hit;});"
    "var s=document.getElementById('exsel');if(s)s.value=hit.id;}\n"
    "window.addEventListener('hashchange',show);show();"
    "var only=new URLSearchParams(location.search).get('section');if(only)"
    "document.querySelectorAll('section').forEach(function(x){x.hidden=x.id!==only;});"
    "if(only&&new URLSearchParams(location.search).get('ex'))"
    "document.querySelectorAll('.extables').forEach(function(x){x.hidden=true;});"
    "var es=document.getElementById('exsel');if(es)es.addEventListener('change',function(){"
    "location.hash=es.value;});\n"
    "var NS='http://www.w3.org/2000/svg';function el(n,a){var "
    "e=document.createElementNS(NS,n);"
    "for(var k in a)e.setAttribute(k,a[k]);return e;}\n"
    "function draw(box,d,k){var hd=d.heads[k],n=d.tok.length,"
    "rh=Math.max(3,Math.min(16,Math.floor(1400/Math.max(n,1)))),W=620,x0=200,x1=420,"
    "svg=el('svg',{width:W,height:n*rh+12}),every=Math.max(1,Math.ceil(10/rh)),lines=[];"
    "var e=hd[2];for(var q=0;q+2<e.length;q+=3){var ln=el('line',{x1:x0,y1:e[q]*rh+rh/2+6,"
    "x2:x1,y2:e[q+1]*rh+rh/2+6,'stroke-opacity':Math.min(1,e[q+2]/1000),"
    "'stroke-width':rh>=8?2:1});ln.q=e[q];lines.push(ln);svg.appendChild(ln);}\n"
    "function hl(i){lines.forEach(function(l){l.style.display=(i<0||l.q===i)?'':'none';});}"
    "for(var i=0;i<n;i++){[[x0-6,'end'],[x1+6,'start']].forEach(function(s){"
    "var t=el('text',{x:s[0],y:i*rh+rh/2+10,'text-anchor':s[1]});"
    "if(i%every===0)t.textContent=d.tok[i].length>24?d.tok[i].slice(0,23)+'\\u2026':d.tok["
    "i];"
    "var r=el('rect',{x:s[1]==='end'?0:x1,y:i*rh+6,width:x0,height:rh,fill:'transparent'});"
    "var ti=el('title',{});ti.textContent=i+': '+d.tok[i];r.appendChild(ti);(function(j){"
    "r.addEventListener('mouseenter',function(){hl(j);});"
    "r.addEventListener('mouseleave',function(){hl(-1);});})(i);"
    "svg.appendChild(t);svg.appendChild(r);});}\n"
    "box.textContent='';box.appendChild(svg);}\n"
    "document.querySelectorAll('.hv').forEach(function(box){"
    "var src=document.getElementById(box.getAttribute('data-src'));if(!src)return;"
    "var d=JSON.parse(src.textContent),sel=box.parentNode.querySelector('select.hsel'),"
    "out=box;d.heads.forEach(function(h,k){var o=document.createElement('option');"
    "o.value=k;o.textContent='layer '+h[0]+', head '+h[1];sel.appendChild(o);});"
    "sel.addEventListener('change',function(){draw(out,d,+sel.value);});"
    "if(d.heads.length)draw(out,d,0);"
    "var img=box.parentNode.parentNode.querySelector('.mv');if(img)"
    "img.addEventListener('click',function(ev){var b=img.getBoundingClientRect(),"
    "l=Math.floor((ev.clientY-b.top)/b.height*(+img.getAttribute('data-l'))),"
    "h=Math.floor((ev.clientX-b.left)/b.width*(+img.getAttribute('data-h')));"
    "d.heads.forEach(function(x,k){"
    "if(x[0]===l&&x[1]===h){sel.value=k;draw(out,d,k);}});});});\n"
    "document.querySelectorAll('select.hgsel').forEach(function(s){var c=s.parentNode."
    "parentNode;function f(){c.querySelectorAll('.hgl').forEach(function(d){"
    "d.hidden=d.getAttribute('data-l')!==s.value;});}s.addEventListener('change',f);f();"
    "var img=c.parentNode.querySelector('.mv');if(img)img.addEventListener('click',"
    "function(ev){var b=img.getBoundingClientRect();s.value=String(Math.floor((ev.clientY-"
    "b.top)/b.height*(+img.getAttribute('data-l'))));f();});});\n"
    "})();\n";

/* A fresh nonce for the Content-Security-Policy: only the page's own script runs, so even
 * markup that slipped through escaping could not run an event handler. */
static void make_nonce(char *out, size_t len) {
  unsigned char b[16] = {0};
  FILE *f = fopen("/dev/urandom", "rb");
  size_t got = f ? fread(b, 1, sizeof b, f) : 0;
  if (f)
    fclose(f);
  if (got != sizeof b) { /* no urandom: the clock and pid still differ per report */
    unsigned long long t =
        (unsigned long long)time(NULL) * 2654435761ull ^ (unsigned)getpid();
    memcpy(b, &t, sizeof t);
  }
  for (size_t i = 0; i < sizeof b && 2 * i + 2 < len; i++)
    snprintf(out + 2 * i, 3, "%02x", b[i]);
}

void am_report_page_begin(am_report_t *r) {
  am_html_t *h = &r->html;
  make_nonce(r->nonce, sizeof r->nonce);
  am_html_printf(h,
                 "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
                 "<meta name=\"viewport\" content=\"width=device-width\">\n"
                 "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src "
                 "'none'; img-src 'self' data: file:; style-src 'unsafe-inline'; "
                 "script-src 'nonce-%s'\">\n<title>attnmap report: ",
                 r->nonce);
  am_html_text(h, r->run_dir);
  am_html_printf(h,
                 "</title>\n<style>%s</style></head><body>\n<header><h1>attnmap report</h1>"
                 "<div>",
                 css);
  am_html_text(h, r->run_dir);
  am_html_raw(h, "</div></header>\n<nav><a href=\"#provenance\">Provenance</a>");
  if (r->opts.baseline)
    am_html_raw(h, "<a href=\"#comparison\">Comparison</a>");
  am_html_raw(h,
              "<a href=\"#heads\">Heads</a><a href=\"#positions\">Positions and tokens</a>"
              "<a href=\"#agreement\">Agreement</a>");
  if (json_object_get(r->run.summary, "faithfulness"))
    am_html_raw(h, "<a href=\"#faithfulness\">Faithfulness</a>");
  am_html_raw(h, "<a href=\"#examples\">Examples</a></nav>\n");
  am_svg_gradients(h);
}

void am_report_page_end(am_report_t *r) {
  am_html_printf(&r->html,
                 "<footer style=\"padding:8px 18px;color:#777\">attnmap %s</footer>\n"
                 "<script nonce=\"%s\">%s</script>\n</body></html>\n",
                 am_version(), r->nonce, js);
}
