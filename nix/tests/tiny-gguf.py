"""Write a tiny random-weight llama model as GGUF (version 3), for the Ollama VM test.

Two layers, 64-wide embeddings and a SentencePiece-style vocabulary of the
three control tokens, the 256 byte tokens and a few words: enough for Ollama
to load it and generate a few tokens on the CPU, offline. Only the Python
standard library is used, so the VM test needs nothing but python3.
tests/modules runs it and checks the file's structure.

usage: python3 tiny-gguf.py OUT.gguf
"""

import random
import struct
import sys

WORDS = ["▁hi", "▁hello", "▁the", "▁a", "▁model", "▁test", "▁ok"]
N_EMBD = 64
N_HEAD = 4
N_HEAD_KV = 4
N_LAYER = 2
N_FF = 128
N_CTX = 256
ALIGNMENT = 32

# GGUF metadata value types and token types (llama.cpp's gguf.h, llama-vocab.h).
UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY = 4, 5, 6, 7, 8, 9
TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_BYTE = 1, 2, 3, 6
GGML_TYPE_F32 = 0


def gguf_string(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def scalar(kind, value):
    fmt = {UINT32: "<I", INT32: "<i", FLOAT32: "<f", BOOL: "<?"}[kind]
    return struct.pack(fmt, value)


def kv(key, kind, value):
    out = gguf_string(key) + struct.pack("<I", kind)
    if kind == STRING:
        return out + gguf_string(value)
    if kind == ARRAY:
        elem, items = value
        out += struct.pack("<IQ", elem, len(items))
        for item in items:
            out += gguf_string(item) if elem == STRING else scalar(elem, item)
        return out
    return out + scalar(kind, value)


def vocab():
    tokens = [("<unk>", TOKEN_UNKNOWN), ("<s>", TOKEN_CONTROL), ("</s>", TOKEN_CONTROL)]
    tokens += [(f"<0x{b:02X}>", TOKEN_BYTE) for b in range(256)]
    tokens += [(w, TOKEN_NORMAL) for w in WORDS]
    scores = [0.0] * (3 + 256) + [-float(i) for i in range(len(WORDS))]
    return [t for t, _ in tokens], scores, [k for _, k in tokens]


def tensors(n_vocab, rng):
    """(name, dims with ne0 first, values) of every tensor."""

    def weight(ne0, ne1):
        return [rng.gauss(0.0, 0.02) for _ in range(ne0 * ne1)]

    def ones(n):
        return [1.0] * n

    kv_dim = N_EMBD // N_HEAD * N_HEAD_KV
    out = [("token_embd.weight", [N_EMBD, n_vocab], weight(N_EMBD, n_vocab))]
    for i in range(N_LAYER):
        out += [
            (f"blk.{i}.attn_norm.weight", [N_EMBD], ones(N_EMBD)),
            (f"blk.{i}.attn_q.weight", [N_EMBD, N_EMBD], weight(N_EMBD, N_EMBD)),
            (f"blk.{i}.attn_k.weight", [N_EMBD, kv_dim], weight(N_EMBD, kv_dim)),
            (f"blk.{i}.attn_v.weight", [N_EMBD, kv_dim], weight(N_EMBD, kv_dim)),
            (f"blk.{i}.attn_output.weight", [N_EMBD, N_EMBD], weight(N_EMBD, N_EMBD)),
            (f"blk.{i}.ffn_norm.weight", [N_EMBD], ones(N_EMBD)),
            (f"blk.{i}.ffn_gate.weight", [N_EMBD, N_FF], weight(N_EMBD, N_FF)),
            (f"blk.{i}.ffn_up.weight", [N_EMBD, N_FF], weight(N_EMBD, N_FF)),
            (f"blk.{i}.ffn_down.weight", [N_FF, N_EMBD], weight(N_FF, N_EMBD)),
        ]
    # Zero rows for <unk>, <s> and </s>: with temperature 0 the model never
    # ends (or fails) on its first token, so it generates num_predict tokens.
    output = weight(N_EMBD, n_vocab)
    output[: 3 * N_EMBD] = [0.0] * (3 * N_EMBD)
    out += [("output_norm.weight", [N_EMBD], ones(N_EMBD)), ("output.weight", [N_EMBD, n_vocab], output)]
    return out


def pad(n):
    return (ALIGNMENT - n % ALIGNMENT) % ALIGNMENT


def build():
    rng = random.Random(0)
    tokens, scores, types = vocab()
    meta = [
        kv("general.architecture", STRING, "llama"),
        kv("general.name", STRING, "ipex-vm-test-tiny"),
        kv("general.file_type", UINT32, 0),  # all F32
        kv("llama.context_length", UINT32, N_CTX),
        kv("llama.embedding_length", UINT32, N_EMBD),
        kv("llama.block_count", UINT32, N_LAYER),
        kv("llama.feed_forward_length", UINT32, N_FF),
        kv("llama.attention.head_count", UINT32, N_HEAD),
        kv("llama.attention.head_count_kv", UINT32, N_HEAD_KV),
        kv("llama.rope.dimension_count", UINT32, N_EMBD // N_HEAD),
        kv("llama.attention.layer_norm_rms_epsilon", FLOAT32, 1e-5),
        kv("llama.vocab_size", UINT32, len(tokens)),
        kv("tokenizer.ggml.model", STRING, "llama"),
        kv("tokenizer.ggml.tokens", ARRAY, (STRING, tokens)),
        kv("tokenizer.ggml.scores", ARRAY, (FLOAT32, scores)),
        kv("tokenizer.ggml.token_type", ARRAY, (INT32, types)),
        kv("tokenizer.ggml.unknown_token_id", UINT32, 0),
        kv("tokenizer.ggml.bos_token_id", UINT32, 1),
        kv("tokenizer.ggml.eos_token_id", UINT32, 2),
        kv("tokenizer.ggml.add_bos_token", BOOL, True),
        kv("tokenizer.ggml.add_eos_token", BOOL, False),
    ]
    ts = tensors(len(tokens), rng)
    infos, data, offset = b"", b"", 0
    for name, dims, values in ts:
        infos += gguf_string(name) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims)
        infos += struct.pack("<IQ", GGML_TYPE_F32, offset)
        blob = struct.pack(f"<{len(values)}f", *values)
        blob += b"\0" * pad(len(blob))
        data += blob
        offset += len(blob)
    header = b"GGUF" + struct.pack("<IQQ", 3, len(ts), len(meta)) + b"".join(meta) + infos
    return header + b"\0" * pad(len(header)) + data


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with open(sys.argv[1], "wb") as f:
        f.write(build())


if __name__ == "__main__":
    main()
