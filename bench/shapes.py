"""Model shapes shared by the benchmark scripts."""

from __future__ import annotations


def llama_config(shape: dict, **fields):
    """A LlamaConfig of `shape` (hidden, intermediate, layers, heads; every head its own KV head), with
    `fields` (vocab size, special token ids, ...) set as given."""
    from transformers import LlamaConfig

    return LlamaConfig(
        hidden_size=shape["hidden"],
        intermediate_size=shape["intermediate"],
        num_hidden_layers=shape["layers"],
        num_attention_heads=shape["heads"],
        num_key_value_heads=shape["heads"],
        **fields,
    )


def tokenizer_fields(tokenizer) -> dict:
    """The vocabulary size and special token ids of `tokenizer`, as LlamaConfig fields."""
    return {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
