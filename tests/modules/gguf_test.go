package modules

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipex-flake/ipex-flake/internal/testlib"
)

// ggufTensor is one tensor info of a GGUF file.
type ggufTensor struct {
	name   string
	dims   []uint64
	typ    uint32
	offset uint64
}

// ggufFile is what the test reads back from a GGUF file.
type ggufFile struct {
	version uint32
	meta    map[string]any
	tensors []ggufTensor
	dataAt  int64 // start of the data section
	size    int64
}

// readLE reads the values ps point at, little-endian, in order.
func readLE(r io.Reader, ps ...any) error {
	for _, p := range ps {
		if err := binary.Read(r, binary.LittleEndian, p); err != nil {
			return err
		}
	}
	return nil
}

// leValue reads one little-endian T.
func leValue[T any](r io.Reader) (any, error) {
	var v T
	err := binary.Read(r, binary.LittleEndian, &v)
	return v, err
}

// readGGUF parses the GGUF v3 layout (llama.cpp's gguf.h): header, metadata,
// tensor infos, data section aligned to 32 bytes.
func readGGUF(b []byte) (*ggufFile, error) {
	r := bytes.NewReader(b)
	var magic [4]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil || string(magic[:]) != "GGUF" {
		return nil, fmt.Errorf("not a GGUF file (magic %q)", magic)
	}
	f := &ggufFile{meta: map[string]any{}, size: int64(len(b))}
	var nTensors, nKV uint64
	if err := readLE(r, &f.version, &nTensors, &nKV); err != nil {
		return nil, err
	}
	str := func() (string, error) {
		var n uint64
		if err := binary.Read(r, binary.LittleEndian, &n); err != nil {
			return "", err
		}
		if n > uint64(r.Len()) {
			return "", errors.New("string runs past the end")
		}
		s := make([]byte, n)
		_, err := io.ReadFull(r, s)
		return string(s), err
	}
	var value func(kind uint32) (any, error)
	value = func(kind uint32) (any, error) {
		switch kind {
		case 4:
			return leValue[uint32](r)
		case 5:
			return leValue[int32](r)
		case 6:
			return leValue[float32](r)
		case 7:
			return leValue[bool](r)
		case 8:
			return str()
		case 9:
			var elem uint32
			var n uint64
			if err := readLE(r, &elem, &n); err != nil {
				return nil, err
			}
			out := make([]any, 0, n)
			for range n {
				v, err := value(elem)
				if err != nil {
					return nil, err
				}
				out = append(out, v)
			}
			return out, nil
		}
		return nil, fmt.Errorf("value type %d not used by the writer", kind)
	}
	for range nKV {
		key, err := str()
		if err != nil {
			return nil, err
		}
		var kind uint32
		if err := binary.Read(r, binary.LittleEndian, &kind); err != nil {
			return nil, err
		}
		if f.meta[key], err = value(kind); err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
	}
	for range nTensors {
		var t ggufTensor
		var err error
		if t.name, err = str(); err != nil {
			return nil, err
		}
		var nDims uint32
		if err := binary.Read(r, binary.LittleEndian, &nDims); err != nil {
			return nil, err
		}
		t.dims = make([]uint64, nDims)
		if err := binary.Read(r, binary.LittleEndian, t.dims); err != nil {
			return nil, err
		}
		if err := readLE(r, &t.typ, &t.offset); err != nil {
			return nil, err
		}
		f.tensors = append(f.tensors, t)
	}
	pos := int64(len(b) - r.Len())
	f.dataAt = (pos + 31) / 32 * 32
	return f, nil
}

// TestTinyGGUF runs nix/tests/tiny-gguf.py (the model of the Ollama VM test)
// and checks the file: llama metadata, a vocabulary with its scores and
// types, every tensor a llama block needs with consistent shapes, aligned
// offsets, and data that fills the file exactly.
func TestTinyGGUF(t *testing.T) {
	testlib.CheckPath(t, "python3")
	out := filepath.Join(t.TempDir(), "tiny.gguf")
	cmd := exec.CommandContext(t.Context(), "python3", filepath.Join(testlib.RepoRoot(t), "nix", "tests", "tiny-gguf.py"), out)
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	msg, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", msg)
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	f, err := readGGUF(b)
	require.NoError(t, err)

	assert.Equal(t, uint32(3), f.version)
	assert.Equal(t, "llama", f.meta["general.architecture"])
	assert.Equal(t, "llama", f.meta["tokenizer.ggml.model"])
	embd := uint64(f.meta["llama.embedding_length"].(uint32))
	ff := uint64(f.meta["llama.feed_forward_length"].(uint32))
	layers := int(f.meta["llama.block_count"].(uint32))
	heads := f.meta["llama.attention.head_count"].(uint32)
	assert.Equal(t, uint32(embd)/heads, f.meta["llama.rope.dimension_count"])
	tokens := f.meta["tokenizer.ggml.tokens"].([]any)
	nVocab := uint64(len(tokens))
	assert.Len(t, f.meta["tokenizer.ggml.scores"], len(tokens))
	assert.Len(t, f.meta["tokenizer.ggml.token_type"], len(tokens))
	assert.Equal(t, uint32(nVocab), f.meta["llama.vocab_size"])
	for id, name := range map[string]string{"tokenizer.ggml.unknown_token_id": "<unk>", "tokenizer.ggml.bos_token_id": "<s>", "tokenizer.ggml.eos_token_id": "</s>"} {
		assert.Equal(t, name, tokens[f.meta[id].(uint32)], id)
	}
	assert.Contains(t, tokens, "<0x41>", "byte tokens let any text be tokenized")

	want := map[string][]uint64{
		"token_embd.weight":  {embd, nVocab},
		"output_norm.weight": {embd},
		"output.weight":      {embd, nVocab},
	}
	for i := range layers {
		for name, dims := range map[string][]uint64{
			"attn_norm": {embd}, "attn_q": {embd, embd}, "attn_k": {embd, embd}, "attn_v": {embd, embd},
			"attn_output": {embd, embd}, "ffn_norm": {embd}, "ffn_gate": {embd, ff}, "ffn_up": {embd, ff}, "ffn_down": {ff, embd},
		} {
			want[fmt.Sprintf("blk.%d.%s.weight", i, name)] = dims
		}
	}
	got := map[string][]uint64{}
	end := uint64(0)
	for _, ts := range f.tensors {
		got[ts.name] = ts.dims
		assert.Equal(t, uint32(0), ts.typ, "%s is F32", ts.name)
		assert.Zero(t, ts.offset%32, "%s offset aligned", ts.name)
		assert.GreaterOrEqual(t, ts.offset, end, "%s overlaps the previous tensor", ts.name)
		n := uint64(4)
		for _, d := range ts.dims {
			n *= d
		}
		end = ts.offset + (n+31)/32*32
	}
	assert.Equal(t, want, got)
	assert.Equal(t, f.size, f.dataAt+int64(end), "the data section fills the file exactly")
}
