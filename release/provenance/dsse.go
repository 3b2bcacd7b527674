package provenance

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Envelope is a DSSE envelope (https://github.com/secure-systems-lab/dsse).
type Envelope struct {
	PayloadType string      `json:"payloadType"`
	Payload     string      `json:"payload"`
	Signatures  []Signature `json:"signatures"`
}

// Signature is one DSSE signature; KeyID is the Nix key name.
type Signature struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"`
}

// Signer signs with a Nix key: Name is the key name, Sign signs a message.
type Signer interface {
	Name() string
	Sign(msg []byte) []byte
}

// PAE is DSSE's pre-authentication encoding, the bytes that are signed.
func PAE(payloadType string, payload []byte) []byte {
	return []byte(fmt.Sprintf("DSSEv1 %d %s %d %s", len(payloadType), payloadType, len(payload), payload))
}

// Sign wraps the statement in an envelope signed by s.
func Sign(st *Statement, s Signer) (*Envelope, error) {
	payload, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	return &Envelope{PayloadType: PayloadType, Payload: base64.StdEncoding.EncodeToString(payload),
		Signatures: []Signature{{KeyID: s.Name(), Sig: base64.StdEncoding.EncodeToString(s.Sign(PAE(PayloadType, payload)))}}}, nil
}

// Marshal renders the envelope as one JSON line (the .intoto.jsonl form).
func (e *Envelope) Marshal() []byte {
	data, _ := json.Marshal(e)
	return append(data, '\n')
}

// ParseEnvelope reads the first envelope of an .intoto.jsonl file.
func ParseEnvelope(data []byte) (*Envelope, error) {
	line, _, _ := strings.Cut(strings.TrimSpace(string(data)), "\n")
	var e Envelope
	if err := json.Unmarshal([]byte(line), &e); err != nil {
		return nil, fmt.Errorf("not a DSSE envelope: %v", err)
	}
	if e.PayloadType == "" || e.Payload == "" {
		return nil, errors.New("not a DSSE envelope: payloadType or payload is missing")
	}
	return &e, nil
}

// ParsePublicKey reads a Nix public key "name:base64".
func ParsePublicKey(text string) (name string, key ed25519.PublicKey, err error) {
	name, b64, ok := strings.Cut(strings.TrimSpace(text), ":")
	raw, derr := base64.StdEncoding.DecodeString(b64)
	if !ok || name == "" || derr != nil || len(raw) != ed25519.PublicKeySize {
		return "", nil, fmt.Errorf("%q is not a Nix public key (want NAME:BASE64 of %d bytes, as in trusted-public-keys)", text, ed25519.PublicKeySize)
	}
	return name, ed25519.PublicKey(raw), nil
}

// ErrBadSignature is returned when no signature of the envelope verifies.
var ErrBadSignature = errors.New("signature does not verify")

// Verify checks that a signature by publicKey (Nix text form) covers the
// payload, and returns the statement.
func (e *Envelope) Verify(publicKey string) (*Statement, error) {
	name, pub, err := ParsePublicKey(publicKey)
	if err != nil {
		return nil, err
	}
	if e.PayloadType != PayloadType {
		return nil, fmt.Errorf("payload type is %q, not %q", e.PayloadType, PayloadType)
	}
	payload, err := base64.StdEncoding.DecodeString(e.Payload)
	if err != nil {
		return nil, fmt.Errorf("payload is not base64: %v", err)
	}
	ok := false
	var keyids []string
	for _, s := range e.Signatures {
		keyids = append(keyids, s.KeyID)
		if s.KeyID != name {
			continue
		}
		sig, err := base64.StdEncoding.DecodeString(s.Sig)
		if err == nil && ed25519.Verify(pub, PAE(e.PayloadType, payload), sig) {
			ok = true
			break
		}
	}
	if !ok {
		return nil, fmt.Errorf("%w with %s (signed by %s)", ErrBadSignature, name, strings.Join(keyids, ", "))
	}
	var st Statement
	if err := json.Unmarshal(payload, &st); err != nil {
		return nil, fmt.Errorf("payload is not an in-toto statement: %v", err)
	}
	if st.Type != StatementType || st.PredicateType != PredicateType {
		return nil, fmt.Errorf("payload is %s / %s, not an in-toto statement with SLSA provenance v1", st.Type, st.PredicateType)
	}
	return &st, nil
}
