"""tiny_models.py - randomly initialised small Hugging Face models and their tokenizers,
saved to a folder as from_pretrained expects (no download): a BERT classifier, a GPT-2
language model and a ViT image classifier, plus a few texts."""
import json
import os

import numpy as np

WORDS = ("the a film movie was is not very good bad great awful plot actors music story "
         "boring fun loved hated it and but with this that of to").split()
TEXTS = ["the film was very good", "this movie is not bad", "awful plot and boring actors",
         "loved it", "the music was great but the story was boring",
         "a fun film with very good actors and a great plot", "hated it",
         "not good", "the story of this film is very very boring and the plot is awful"]


def write_jsonl(path, texts=TEXTS, labels=True):
    with open(path, "w") as f:
        for i, t in enumerate(texts):
            row = {"id": "t%d" % i, "text": t}
            if labels:
                row["label"] = i % 2
            f.write(json.dumps(row) + "\n")
    return path


def make_bert(path, layers=2, heads=2, hidden=16, labels=2, seed=0):
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    os.makedirs(path, exist_ok=True)
    vocab = os.path.join(path, "vocab.txt")
    with open(vocab, "w") as f:
        f.write("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list(WORDS)) + "\n")
    tok = BertTokenizerFast(vocab_file=vocab)
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=len(WORDS) + 5, hidden_size=hidden, num_hidden_layers=layers,
                     num_attention_heads=heads, intermediate_size=2 * hidden,
                     max_position_embeddings=64, num_labels=labels,
                     architectures=["BertForSequenceClassification"])
    model = BertForSequenceClassification(cfg)
    _spread(model, torch)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def _spread(model, torch):
    """Larger random weights than the default 0.02 init, so that attention is far from
    uniform and gradients are not tiny."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.3)


def make_gpt2(path, layers=2, heads=2, hidden=16, seed=0, positions=64, **config):
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    os.makedirs(path, exist_ok=True)
    vocab = {w: i for i, w in enumerate(["<eos>", "<unk>"] + list(WORDS))}
    t = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    t.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=t, eos_token="<eos>", unk_token="<unk>",
                                  bos_token="<eos>")
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=len(vocab), n_embd=hidden, n_layer=layers, n_head=heads,
                     n_positions=positions, bos_token_id=0, eos_token_id=0,
                     architectures=["GPT2LMHeadModel"], **config)
    model = GPT2LMHeadModel(cfg)
    _spread(model, torch)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def make_vit(path, image=16, patch=4, layers=2, heads=2, hidden=16, labels=3, seed=0):
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    os.makedirs(path, exist_ok=True)
    torch.manual_seed(seed)
    cfg = ViTConfig(image_size=image, patch_size=patch, num_channels=3, hidden_size=hidden,
                    num_hidden_layers=layers, num_attention_heads=heads,
                    intermediate_size=2 * hidden, num_labels=labels,
                    architectures=["ViTForImageClassification"])
    model = ViTForImageClassification(cfg)
    _spread(model, torch)
    model.save_pretrained(path)
    ViTImageProcessor(size={"height": image, "width": image}).save_pretrained(path)
    return path


def write_images(folder, n=5, size=16, seed=0):
    """n random RGB images as .npy files and a JSONL naming them, with labels."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "images.jsonl")
    with open(path, "w") as f:
        for i in range(n):
            name = "img%d.npy" % i
            np.save(os.path.join(folder, name), rng.integers(0, 256, (size, size, 3), np.uint8))
            f.write(json.dumps({"id": i, "image": name, "label": i % 3}) + "\n")
    return path


def _word_tokenizer():
    """The word-level tokenizer of make_gpt2 (<eos> = 0 pads)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<eos>", "<unk>"] + list(WORDS))}
    t = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    t.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=t, eos_token="<eos>", unk_token="<unk>",
                                   bos_token="<eos>", pad_token="<eos>",
                                   model_input_names=["input_ids", "attention_mask"])


DECODERS = {  # model_type: (config class, model class, what the config sets)
    "llama": ("LlamaConfig", "LlamaForCausalLM", {}),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", {}),
    "mistral": ("MistralConfig", "MistralForCausalLM", {"sliding_window": 3}),
}


def make_decoder(path, kind, layers=2, heads=4, kv_heads=2, hidden=32, seed=0):
    """A random Llama-family causal LM (grouped-query attention: heads / kv_heads query
    heads per KV head; Mistral with a sliding window of 3) and the word-level tokenizer."""
    import torch
    import transformers as tf

    cfg_cls, model_cls, extra = DECODERS[kind]
    os.makedirs(path, exist_ok=True)
    tok = _word_tokenizer()
    torch.manual_seed(seed)
    cfg = getattr(tf, cfg_cls)(vocab_size=len(WORDS) + 2, hidden_size=hidden,
                               intermediate_size=2 * hidden, num_hidden_layers=layers,
                               num_attention_heads=heads, num_key_value_heads=kv_heads,
                               max_position_embeddings=64, bos_token_id=0, eos_token_id=0,
                               pad_token_id=0, architectures=[model_cls], **extra)
    model = getattr(tf, model_cls)(cfg)
    _spread(model, torch)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def _seq2seq_tokenizer():
    """A word-level tokenizer that ends every text with </s> (pad 0, </s> 1, as T5's)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<pad>", "</s>", "<unk>"] + list(WORDS))}
    t = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    t.pre_tokenizer = pre_tokenizers.Whitespace()
    t.post_processor = processors.TemplateProcessing(single="$A </s>",
                                                     special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=t, eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>",
                                   model_input_names=["input_ids", "attention_mask"])


def make_seq2seq(path, kind="t5", layers=2, heads=2, hidden=16, seed=0):
    """A random T5 or BART model (encoder and decoder of `layers` layers) and a word-level
    tokenizer; decoding starts with <pad> (T5) or </s> (BART)."""
    import torch
    import transformers as tf

    os.makedirs(path, exist_ok=True)
    tok = _seq2seq_tokenizer()
    torch.manual_seed(seed)
    n = len(WORDS) + 3
    if kind == "t5":
        cfg = tf.T5Config(vocab_size=n, d_model=hidden, d_kv=hidden // heads, d_ff=2 * hidden,
                          num_layers=layers, num_heads=heads, pad_token_id=0, eos_token_id=1,
                          decoder_start_token_id=0, architectures=["T5ForConditionalGeneration"])
        model = tf.T5ForConditionalGeneration(cfg)
    else:
        cfg = tf.BartConfig(vocab_size=n, d_model=hidden, encoder_layers=layers,
                            decoder_layers=layers, encoder_attention_heads=heads,
                            decoder_attention_heads=heads, encoder_ffn_dim=2 * hidden,
                            decoder_ffn_dim=2 * hidden, max_position_embeddings=64,
                            pad_token_id=0, bos_token_id=1, eos_token_id=1,
                            decoder_start_token_id=1, forced_bos_token_id=None,
                            forced_eos_token_id=None,
                            architectures=["BartForConditionalGeneration"])
        model = tf.BartForConditionalGeneration(cfg)
    _spread(model, torch)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path
