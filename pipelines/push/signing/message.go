package signing

import "crypto/ed25519"

// Sign signs msg with the key (ed25519), for documents other than
// narinfos such as a release's provenance.
func (k *Key) Sign(msg []byte) []byte { return ed25519.Sign(k.secret, msg) }
