// Package githubtest is a stateful GitHub REST API for tests: an httptest
// server under a non-root base path (/api-v3/) that keeps tags, channel
// refs, releases, assets and commit statuses in a Fake, refuses
// non-fast-forward ref updates, answers 422 already_exists like GitHub,
// and can inject failures (502, secondary rate limits) before a request.
package githubtest

import (
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/ipex-flake/ipex-flake/release/forge"
	"github.com/ipex-flake/ipex-flake/release/github"
)

// BasePath is the API prefix of the server.
const BasePath = "/api-v3/"

// Failure is an injected response.
type Failure struct {
	Code    int
	Header  map[string]string
	Body    string
	matched bool
}

// Server is the fake GitHub.
type Server struct {
	*httptest.Server
	Fake *Fake
	t    testing.TB

	mu       sync.Mutex
	failures map[string][]*Failure // "METHOD pattern" → queue
	Requests []string              // "METHOD path" of every request
	// Auth records the Authorization headers seen.
	Auth []string
}

// New starts a server for repository owner/repo. ancestor decides fast-forwards.
func New(t testing.TB, owner, repo string, ancestor func(a, b string) bool) *Server {
	s := &Server{Fake: NewFake(owner, repo), t: t, failures: map[string][]*Failure{}}
	s.Fake.Ancestor = ancestor
	mux := http.NewServeMux()
	p := BasePath + "repos/" + owner + "/" + repo
	up := BasePath + "uploads/repos/" + owner + "/" + repo
	route := func(pattern string, h http.HandlerFunc) {
		method, _, _ := strings.Cut(pattern, " ")
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if r.Method != method {
				t.Errorf("%s %s: want method %s", r.Method, r.URL.Path, method)
			}
			s.mu.Lock()
			s.Requests = append(s.Requests, r.Method+" "+strings.TrimPrefix(r.URL.Path, strings.TrimSuffix(BasePath, "/")))
			s.Auth = append(s.Auth, r.Header.Get("Authorization"))
			var f *Failure
			if q := s.failures[pattern]; len(q) > 0 {
				f, s.failures[pattern] = q[0], q[1:]
			}
			s.mu.Unlock()
			if f != nil {
				for k, v := range f.Header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(f.Code)
				_, _ = w.Write([]byte(f.Body))
				return
			}
			h(w, r)
		})
	}
	route("GET "+p+"/git/matching-refs/tags/", s.listTags)
	route("GET "+p+"/git/tags/{sha}", s.getTag)
	route("POST "+p+"/git/refs", s.createRef)
	route("GET "+p+"/git/ref/heads/channels/{ch}", s.getChannel)
	route("PATCH "+p+"/git/refs/heads/channels/{ch}", s.updateChannel)
	route("GET "+p+"/releases/tags/{tag}", s.getRelease)
	route("POST "+p+"/releases", s.createRelease)
	route("PATCH "+p+"/releases/{id}", s.editRelease)
	route("POST "+up+"/releases/{id}/assets", s.uploadAsset)
	route("GET "+p+"/commits/{sha}/status", s.combinedStatus)
	route("POST "+p+"/statuses/{sha}", s.createStatus)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("unexpected request %s %s", r.Method, r.URL)
		http.Error(w, "unexpected", http.StatusNotFound)
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// APIURL is the base URL for GITHUB_API_URL.
func (s *Server) APIURL() string { return s.URL + BasePath }

// UploadURL is the upload base URL for GITHUB_UPLOAD_URL.
func (s *Server) UploadURL() string { return s.URL + BasePath + "uploads/" }

// Fail queues an injected response for the route pattern ("POST
// /api-v3/repos/o/r/git/refs" form, as registered).
func (s *Server) Fail(method, route string, f Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pattern := method + " " + BasePath + "repos/" + s.Fake.Owner + "/" + s.Fake.Repo + route
	if strings.HasPrefix(route, "uploads/") {
		pattern = method + " " + BasePath + "uploads/repos/" + s.Fake.Owner + "/" + s.Fake.Repo + strings.TrimPrefix(route, "uploads")
	}
	s.failures[pattern] = append(s.failures[pattern], &f)
}

// SecondaryRateLimit is GitHub's 403 for a secondary rate limit.
func SecondaryRateLimit(retryAfter string) Failure {
	f := Failure{Code: http.StatusForbidden, Body: `{"message":"You have exceeded a secondary rate limit.","documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"}`}
	if retryAfter != "" {
		f.Header = map[string]string{"Retry-After": retryAfter}
	}
	return f
}

// BadGateway is a 502.
func BadGateway() Failure { return Failure{Code: http.StatusBadGateway, Body: "bad gateway"} }

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func exists(w http.ResponseWriter, resource string) {
	writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
		"message": "Validation Failed",
		"errors":  []map[string]string{{"resource": resource, "code": "already_exists"}},
	})
}

func notFound(w http.ResponseWriter) {
	writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not Found"})
}

func ref(name, sha string) map[string]any {
	return map[string]any{"ref": name, "object": map[string]string{"type": "commit", "sha": sha}}
}

func (s *Server) listTags(w http.ResponseWriter, r *http.Request) {
	tags, _ := s.Fake.Tags(r.Context())
	s.Fake.Lock()
	annotated := maps.Clone(s.Fake.Annotated)
	s.Fake.Unlock()
	out := []map[string]any{}
	for _, t := range tags {
		if obj, ok := annotated[t.Name]; ok {
			// GitHub lists an annotated tag with its tag object.
			out = append(out, map[string]any{"ref": "refs/tags/" + t.Name, "object": map[string]string{"type": "tag", "sha": obj}})
			continue
		}
		out = append(out, ref("refs/tags/"+t.Name, t.SHA))
	}
	writeJSON(w, http.StatusOK, out)
}

// getTag answers GET git/tags/{sha}: the commit an annotated tag object
// points at.
func (s *Server) getTag(w http.ResponseWriter, r *http.Request) {
	obj := r.PathValue("sha")
	s.Fake.Lock()
	defer s.Fake.Unlock()
	for name, o := range s.Fake.Annotated {
		if o == obj {
			writeJSON(w, http.StatusOK, map[string]any{"sha": obj, "tag": name, "object": map[string]string{"type": "commit", "sha": s.Fake.TagRefs[name]}})
			return
		}
	}
	notFound(w)
}

func (s *Server) createRef(w http.ResponseWriter, r *http.Request) {
	var body struct{ Ref, SHA string }
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var err error
	switch {
	case strings.HasPrefix(body.Ref, "refs/tags/"):
		err = s.Fake.CreateTag(r.Context(), strings.TrimPrefix(body.Ref, "refs/tags/"), body.SHA)
	case strings.HasPrefix(body.Ref, "refs/heads/channels/"):
		err = s.Fake.SetChannelRef(r.Context(), strings.TrimPrefix(body.Ref, "refs/heads/channels/"), "", body.SHA)
	default:
		s.t.Errorf("unexpected ref %s", body.Ref)
	}
	if errors.Is(err, forge.ErrExists) {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"message": "Reference already exists"})
		return
	}
	writeJSON(w, http.StatusCreated, ref(body.Ref, body.SHA))
}

func (s *Server) getChannel(w http.ResponseWriter, r *http.Request) {
	ch := r.PathValue("ch")
	sha, _ := s.Fake.ChannelRef(r.Context(), ch)
	if sha == "" {
		notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, ref(forge.ChannelRefName(ch), sha))
}

func (s *Server) updateChannel(w http.ResponseWriter, r *http.Request) {
	ch := r.PathValue("ch")
	var body struct {
		SHA   string `json:"sha"`
		Force *bool  `json:"force"`
	}
	_ = json.NewDecoder(r.Body).Decode(&body)
	if body.Force == nil || *body.Force {
		s.t.Errorf("channel ref %s updated without force=false", ch)
	}
	cur, _ := s.Fake.ChannelRef(r.Context(), ch)
	if cur == "" {
		notFound(w)
		return
	}
	if err := s.Fake.SetChannelRef(r.Context(), ch, cur, body.SHA); err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"message": "Update is not a fast forward"})
		return
	}
	writeJSON(w, http.StatusOK, ref(forge.ChannelRefName(ch), body.SHA))
}

func (s *Server) releaseJSON(rel *forge.Release) map[string]any {
	assets := []map[string]any{}
	for i, a := range rel.Assets {
		assets = append(assets, map[string]any{"id": i + 1, "name": a})
	}
	return map[string]any{
		"id": rel.ID, "tag_name": rel.Tag, "name": rel.Name, "body": rel.Body, "target_commitish": rel.Rev,
		"prerelease": rel.Prerelease, "draft": false, "html_url": rel.URL, "assets": assets,
		"upload_url": s.UploadURL() + "repos/" + s.Fake.Owner + "/" + s.Fake.Repo + "/releases/" + strconv.FormatInt(rel.ID, 10) + "/assets{?name,label}",
	}
}

func (s *Server) getRelease(w http.ResponseWriter, r *http.Request) {
	rel, _ := s.Fake.Release(r.Context(), r.PathValue("tag"))
	if rel == nil {
		notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, s.releaseJSON(rel))
}

func (s *Server) createRelease(w http.ResponseWriter, r *http.Request) {
	var body struct {
		TagName         string `json:"tag_name"`
		TargetCommitish string `json:"target_commitish"`
		Name, Body      string
		Prerelease      bool   `json:"prerelease"`
		MakeLatest      string `json:"make_latest"`
	}
	_ = json.NewDecoder(r.Body).Decode(&body)
	if !s.Fake.HasTag(body.TagName) {
		s.t.Errorf("release %s created before its tag", body.TagName)
	}
	rel, err := s.Fake.CreateRelease(r.Context(), forge.Release{Tag: body.TagName, Name: body.Name, Body: body.Body,
		Rev: body.TargetCommitish, Prerelease: body.Prerelease, Latest: body.MakeLatest == "true"})
	if err != nil {
		exists(w, "Release")
		return
	}
	writeJSON(w, http.StatusCreated, s.releaseJSON(rel))
}

func (s *Server) byID(r *http.Request) *forge.Release {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	return s.Fake.ReleaseByID(id)
}

func (s *Server) editRelease(w http.ResponseWriter, r *http.Request) {
	rel := s.byID(r)
	if rel == nil {
		notFound(w)
		return
	}
	var body struct{ Body *string }
	_ = json.NewDecoder(r.Body).Decode(&body)
	if body.Body != nil {
		_ = s.Fake.EditBody(r.Context(), rel, *body.Body)
	}
	writeJSON(w, http.StatusOK, s.releaseJSON(rel))
}

func (s *Server) uploadAsset(w http.ResponseWriter, r *http.Request) {
	rel := s.byID(r)
	if rel == nil {
		notFound(w)
		return
	}
	data, _ := io.ReadAll(r.Body)
	name := r.URL.Query().Get("name")
	if err := s.Fake.UploadAsset(r.Context(), rel, name, data); err != nil {
		exists(w, "ReleaseAsset")
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"id": 1, "name": name, "size": len(data)})
}

func (s *Server) combinedStatus(w http.ResponseWriter, r *http.Request) {
	sts, _ := s.Fake.Statuses(r.Context(), r.PathValue("sha"))
	seen := map[string]bool{}
	out := []map[string]string{}
	for _, st := range sts {
		if seen[st.Context] {
			continue
		}
		seen[st.Context] = true
		out = append(out, map[string]string{"context": st.Context, "state": st.State, "description": st.Description, "target_url": st.TargetURL})
	}
	writeJSON(w, http.StatusOK, map[string]any{"sha": r.PathValue("sha"), "statuses": out, "total_count": len(out)})
}

func (s *Server) createStatus(w http.ResponseWriter, r *http.Request) {
	var body struct {
		State, Context, Description string
		TargetURL                   string `json:"target_url"`
	}
	_ = json.NewDecoder(r.Body).Decode(&body)
	_ = s.Fake.CreateStatus(r.Context(), r.PathValue("sha"), github.Status{Context: body.Context, State: body.State, Description: body.Description, TargetURL: body.TargetURL})
	writeJSON(w, http.StatusCreated, body)
}
