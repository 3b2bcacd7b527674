"""Write a tiny random-weight llama model as GGUF, for the Ollama VM test.

Two layers, 64-wide embeddings and a 300-token SentencePiece-style vocabulary
(control tokens, the 256 byte tokens and a few words): enough for Ollama to
load it and generate a few tokens on the CPU in a VM, offline.

usage: python3 tiny-gguf.py OUT.gguf
"""

import sys

import numpy as np
from gguf import GGUFWriter, TokenType

N_VOCAB_WORDS = ["▁hi", "▁hello", "▁the", "▁a", "▁model", "▁test", "▁ok"]
N_EMBD = 64
N_HEAD = 4
N_HEAD_KV = 4
N_LAYER = 2
N_FF = 128
N_CTX = 256


def vocab():
    tokens, scores, types = [], [], []
    for text, kind in (("<unk>", TokenType.UNKNOWN), ("<s>", TokenType.CONTROL), ("</s>", TokenType.CONTROL)):
        tokens.append(text)
        scores.append(0.0)
        types.append(kind)
    for b in range(256):
        tokens.append(f"<0x{b:02X}>")
        scores.append(0.0)
        types.append(TokenType.BYTE)
    for i, word in enumerate(N_VOCAB_WORDS):
        tokens.append(word)
        scores.append(-float(i))
        types.append(TokenType.NORMAL)
    return tokens, scores, types


def main(path):
    rng = np.random.default_rng(0)
    tokens, scores, types = vocab()
    n_vocab = len(tokens)

    def weight(*shape):
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    w = GGUFWriter(path, "llama")
    w.add_name("ipex-vm-test-tiny")
    w.add_context_length(N_CTX)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD_KV)
    w.add_rope_dimension_count(N_EMBD // N_HEAD)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(0)  # all F32
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)

    # numpy shapes are (rows, cols) = GGUF (ne1, ne0): each weight maps ne0
    # inputs to ne1 outputs.
    w.add_tensor("token_embd.weight", weight(n_vocab, N_EMBD))
    for i in range(N_LAYER):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        w.add_tensor(f"blk.{i}.attn_q.weight", weight(N_EMBD, N_EMBD))
        w.add_tensor(f"blk.{i}.attn_k.weight", weight(N_EMBD // N_HEAD * N_HEAD_KV, N_EMBD))
        w.add_tensor(f"blk.{i}.attn_v.weight", weight(N_EMBD // N_HEAD * N_HEAD_KV, N_EMBD))
        w.add_tensor(f"blk.{i}.attn_output.weight", weight(N_EMBD, N_EMBD))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", weight(N_FF, N_EMBD))
        w.add_tensor(f"blk.{i}.ffn_up.weight", weight(N_FF, N_EMBD))
        w.add_tensor(f"blk.{i}.ffn_down.weight", weight(N_EMBD, N_FF))
    w.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    # Zero rows for <unk>, <s> and </s>: with temperature 0 a random model
    # never ends (or fails) on its first token, so it generates num_predict.
    output = weight(n_vocab, N_EMBD)
    output[:3] = 0.0
    w.add_tensor("output.weight", output)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
