// Package provenance writes and checks the build provenance attached to
// every release: an in-toto Statement v1 whose predicate is SLSA Provenance
// v1, signed in a DSSE envelope with a Nix (ed25519) signing key.
//
// The subjects are the out paths of the released outputs with the SHA-256 of
// their NAR (the hash nix records as narHash); the build definition names
// the flake, the commit, each output's derivation and builder, the engine,
// the flake.lock inputs with their narHash, and the stage results that gated
// the release.
package provenance

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"
)

// Format identifiers, as the in-toto and SLSA specifications name them.
const (
	StatementType   = "https://in-toto.io/Statement/v1"
	PredicateType   = "https://slsa.dev/provenance/v1"
	PayloadType     = "application/vnd.in-toto+json"
	BuildType       = "https://github.com/ipex-flake/ipex-flake/ci-build/v1"
	DefaultBuilder  = "https://github.com/ipex-flake/ipex-flake/ci"
	AssetName       = "provenance.intoto.jsonl"
	annotationNar   = "narHash"
	annotationAttr  = "attr"
	annotationState = "state"
)

// Statement is an in-toto Statement v1.
type Statement struct {
	Type          string       `json:"_type"`
	Subject       []Descriptor `json:"subject"`
	PredicateType string       `json:"predicateType"`
	Predicate     Provenance   `json:"predicate"`
}

// Descriptor is an in-toto ResourceDescriptor.
type Descriptor struct {
	Name        string            `json:"name,omitempty"`
	URI         string            `json:"uri,omitempty"`
	Digest      map[string]string `json:"digest,omitempty"`
	Annotations map[string]any    `json:"annotations,omitempty"`
}

// Provenance is the SLSA Provenance v1 predicate.
type Provenance struct {
	BuildDefinition BuildDefinition `json:"buildDefinition"`
	RunDetails      RunDetails      `json:"runDetails"`
}

// BuildDefinition says what was built from what.
type BuildDefinition struct {
	BuildType            string             `json:"buildType"`
	ExternalParameters   ExternalParameters `json:"externalParameters"`
	InternalParameters   InternalParameters `json:"internalParameters"`
	ResolvedDependencies []Descriptor       `json:"resolvedDependencies"`
}

// ExternalParameters are the inputs a maintainer controls.
type ExternalParameters struct {
	Flake   string `json:"flake"`
	Rev     string `json:"rev"`
	Channel string `json:"channel"`
	Version string `json:"version"`
}

// InternalParameters are what the pipeline chose.
type InternalParameters struct {
	Engine  string   `json:"engine,omitempty"`
	Cache   string   `json:"cache,omitempty"`
	Outputs []Output `json:"outputs"`
	// Gates are the stage results the promotion's gates read.
	Gates []Gate `json:"gates"`
}

// Output is one released flake output.
type Output struct {
	Attr     string   `json:"attr"`
	System   string   `json:"system,omitempty"`
	DrvPath  string   `json:"drvPath,omitempty"`
	OutPaths []string `json:"outPaths"`
	// Builder is the machine that built it ("" for the local nix).
	Builder string `json:"builder,omitempty"`
	Status  string `json:"status,omitempty"`
}

// Gate is one stage result that gated the release.
type Gate struct {
	Stage       string    `json:"stage"`
	State       string    `json:"state"`
	Rev         string    `json:"rev"`
	Description string    `json:"description,omitempty"`
	URL         string    `json:"url,omitempty"`
	Time        time.Time `json:"time"`
	// Flake, NarHash and Report are what the result was bound to: the
	// flake's directory and narHash, and the build report's digest.
	Flake   string `json:"flake,omitempty"`
	NarHash string `json:"narHash,omitempty"`
	Report  string `json:"report,omitempty"`
	// External is set for a result that tested external services.
	External bool `json:"external,omitempty"`
}

// RunDetails says who ran the build and when.
type RunDetails struct {
	Builder    Builder      `json:"builder"`
	Metadata   Metadata     `json:"metadata"`
	Byproducts []Descriptor `json:"byproducts,omitempty"`
}

// Builder identifies the platform that produced the provenance.
type Builder struct {
	ID string `json:"id"`
}

// Metadata is the run's identity and times.
type Metadata struct {
	InvocationID string    `json:"invocationId"`
	StartedOn    time.Time `json:"startedOn"`
	FinishedOn   time.Time `json:"finishedOn"`
}

// PathNarHash is an out path and its NAR hash as nix prints it.
type PathNarHash struct {
	Path, NarHash string
}

// Input is everything Build needs.
type Input struct {
	Flake, Rev, Channel, Version, Engine, Cache string
	Outputs                                     []Output
	// NarHashes maps out paths to their narHash (nix path-info).
	NarHashes map[string]string
	// Lock is flake.lock's content (nil when the flake has none).
	Lock []byte
	// RepoURL is the repository's web URL ("" locally).
	RepoURL                 string
	Gates                   []Gate
	BuilderID, InvocationID string
	StartedOn, FinishedOn   time.Time
}

// Build returns the statement of a release. An out path without a NAR hash
// (in neither the store nor the cache) is no subject: Build names it in
// missing, and a verification of the release reports it.
func Build(in Input) (st *Statement, missing []string, err error) {
	st = &Statement{Type: StatementType, PredicateType: PredicateType}
	outs := append([]Output(nil), in.Outputs...)
	sort.Slice(outs, func(i, j int) bool { return outs[i].Attr < outs[j].Attr })
	seen := map[string]bool{}
	for _, o := range outs {
		for _, p := range o.OutPaths {
			if seen[p] {
				continue
			}
			seen[p] = true
			nh, ok := in.NarHashes[p]
			if !ok {
				missing = append(missing, p)
				continue
			}
			hx, err := SHA256Hex(nh)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %v", p, err)
			}
			st.Subject = append(st.Subject, Descriptor{Name: p, Digest: map[string]string{"sha256": hx},
				Annotations: map[string]any{annotationNar: nh, annotationAttr: o.Attr}})
		}
	}
	deps, err := lockDependencies(in.Lock)
	if err != nil {
		return nil, nil, err
	}
	src := Descriptor{Name: "source", Digest: map[string]string{"gitCommit": in.Rev}}
	if in.RepoURL != "" {
		src.URI = "git+" + in.RepoURL + "@" + in.Rev
	}
	deps = append([]Descriptor{src}, deps...)
	builder := in.BuilderID
	if builder == "" {
		builder = DefaultBuilder
	}
	gates := append([]Gate(nil), in.Gates...)
	sort.Slice(gates, func(i, j int) bool { return gates[i].Stage < gates[j].Stage })
	st.Predicate = Provenance{
		BuildDefinition: BuildDefinition{
			BuildType:            BuildType,
			ExternalParameters:   ExternalParameters{Flake: in.Flake, Rev: in.Rev, Channel: in.Channel, Version: in.Version},
			InternalParameters:   InternalParameters{Engine: in.Engine, Cache: in.Cache, Outputs: outs, Gates: gates},
			ResolvedDependencies: deps,
		},
		RunDetails: RunDetails{
			Builder:  Builder{ID: builder},
			Metadata: Metadata{InvocationID: in.InvocationID, StartedOn: in.StartedOn.UTC(), FinishedOn: in.FinishedOn.UTC()},
		},
	}
	return st, missing, nil
}

// lockFile is the part of flake.lock the provenance reads.
type lockFile struct {
	Nodes map[string]struct {
		Locked   map[string]any `json:"locked"`
		Original map[string]any `json:"original"`
	} `json:"nodes"`
	Root string `json:"root"`
}

// lockDependencies returns every locked node of flake.lock with its narHash.
func lockDependencies(lock []byte) ([]Descriptor, error) {
	if len(lock) == 0 {
		return nil, nil
	}
	var lf lockFile
	if err := json.Unmarshal(lock, &lf); err != nil {
		return nil, fmt.Errorf("flake.lock: %v", err)
	}
	var names []string
	for n, node := range lf.Nodes {
		if n != lf.Root && node.Locked != nil {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var out []Descriptor
	for _, n := range names {
		locked := lf.Nodes[n].Locked
		d := Descriptor{Name: n, URI: lockedURI(locked), Annotations: map[string]any{"locked": locked}}
		if nh, ok := locked["narHash"].(string); ok {
			hx, err := SHA256Hex(nh)
			if err != nil {
				return nil, fmt.Errorf("flake.lock node %s: %v", n, err)
			}
			d.Digest = map[string]string{"sha256": hx}
			d.Annotations[annotationNar] = nh
		}
		if rev, ok := locked["rev"].(string); ok {
			if d.Digest == nil {
				d.Digest = map[string]string{}
			}
			d.Digest["gitCommit"] = rev
		}
		out = append(out, d)
	}
	return out, nil
}

// lockedURI renders a locked flake reference as a URL.
func lockedURI(l map[string]any) string {
	s := func(k string) string { v, _ := l[k].(string); return v }
	switch s("type") {
	case "github", "gitlab", "sourcehut":
		return fmt.Sprintf("%s:%s/%s/%s", s("type"), s("owner"), s("repo"), s("rev"))
	case "git", "tarball", "file", "mercurial":
		u := s("url")
		if r := s("rev"); r != "" {
			u += "?rev=" + r
		}
		return s("type") + "+" + u
	case "path":
		return "path:" + s("path")
	}
	return s("type")
}

// Subjects maps each subject's name (an out path) to its SHA-256 in hex.
func (s *Statement) Subjects() map[string]string {
	m := map[string]string{}
	for _, d := range s.Subject {
		m[d.Name] = d.Digest["sha256"]
	}
	return m
}
