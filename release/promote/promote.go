// Package promote moves a commit through the dev, beta and stable channels.
//
// Plan reads everything — tags, the channel ref, the stage results recorded
// for the commit — checks the channel's gate and computes the version;
// Execute makes the effects in an order that a rerun can always finish:
//
//  1. git tag (never moved, never reused)
//  2. channel ref refs/heads/channels/<name>, fast-forwarded, never forced
//  3. release (pre-release for dev and beta, latest for stable) with notes
//  4. channel manifest asset
//  5. notification, then a marker in the release body so a rerun does not
//     send it again
//
// Every step first looks at what is already there. When a tag, ref or
// release appears concurrently the promotion re-reads and decides again.
package promote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/internal/shorthash"
	"github.com/ipex-flake/ipex-flake/pipelines/gpuclass"
	"github.com/ipex-flake/ipex-flake/pipelines/report"
	"github.com/ipex-flake/ipex-flake/pipelines/results"
	"github.com/ipex-flake/ipex-flake/release/forge"
	"github.com/ipex-flake/ipex-flake/release/gitrepo"
	"github.com/ipex-flake/ipex-flake/release/notes"
	"github.com/ipex-flake/ipex-flake/release/slack"
	"github.com/ipex-flake/ipex-flake/release/version"
)

// Options is one promotion request.
type Options struct {
	Channel version.Channel
	// Rev is the commit to promote (default HEAD).
	Rev    string
	DryRun bool
	// ApprovedBy is the approver of a stable promotion.
	ApprovedBy string
	// Report is the build report of Rev (optional), for the manifest.
	Report *report.Report
	// Want is the flake and build report being released: the stage gate
	// accepts only results bound to it (results.Binding). The command
	// resolves it from the build report; without one every stage gate
	// refuses.
	Want results.Binding
	// AllowExternalServices lets the beta and stable gates accept
	// integration and performance results that tested an external service
	// rather than the services started from the build.
	AllowExternalServices bool
	// Cache is the binary cache URI and PublicKey its signing public key,
	// both recorded in the manifest.
	Cache, PublicKey string
	Version          version.Config
	// Attach returns further assets (the provenance) to attach next to the
	// manifest; nil attaches none. It runs only when the release is made.
	Attach AttachFunc
}

// Promoter holds the services a promotion uses.
type Promoter struct {
	// Repo is the local clone: history and ancestry.
	Repo     *gitrepo.Repo
	Forge    forge.Forge
	Results  results.Store
	Notifier slack.Notifier
	// Log receives notes (history fetched); nil discards them.
	Log io.Writer
	// GPU is the GPU compatibility matrix (ci/gpu-classes.json): the
	// classes whose STAGE@CLASS results beta and stable require, and the
	// table in the release notes. nil: no classes.
	GPU *gpuclass.Config

	historyChecked bool
}

// Manifest is the channel manifest asset attached to every release.
type Manifest struct {
	Version string            `json:"version"`
	Channel string            `json:"channel"`
	Rev     string            `json:"rev"`
	Outputs map[string]string `json:"outputs"`
	Cache   string            `json:"cache,omitempty"`
	// PublicKey verifies the cache's signatures.
	PublicKey  string `json:"publicKey,omitempty"`
	ApprovedBy string `json:"approvedBy,omitempty"`
}

// Plan is a checked promotion: what Execute will make.
type Plan struct {
	Channel version.Channel
	Rev     string
	Tag     string
	Bump    version.Bump
	// LastStable is the release the bump is computed from ("" for none).
	LastStable string
	// Phase is the phase tag the version comes from ("" when the bump
	// decided it), PhaseVersion the version it stands for.
	Phase, PhaseVersion string
	// Resume is true when Tag already points at Rev (an earlier run made it).
	Resume bool
	// AlreadyStable is the stable release of Rev when one exists and the
	// promotion is to dev or beta: there is nothing to do.
	AlreadyStable string
	// Previous is the channel's previous release tag ("" for the first).
	Previous string
	// Head is the commit the channel ref points at ("" when absent).
	Head       string
	Stages     []notes.Stage
	ApprovedBy string
	Notes      string
	Manifest   Manifest
	repoURL    string
	attach     AttachFunc
}

// ManifestJSON returns the manifest asset's content.
func (p *Plan) ManifestJSON() []byte {
	data, _ := json.MarshalIndent(p.Manifest, "", "  ")
	return append(data, '\n')
}

// state is what the forge holds.
type state struct {
	tags []forge.Tag
	rels []version.Release
	sha  map[string]string // tag → commit
	// reach is the set of commits reachOf reaches.
	reach   map[string]bool
	reachOf string
}

func (p *Promoter) read(ctx context.Context) (*state, error) {
	if err := p.ensureHistory(ctx); err != nil {
		return nil, err
	}
	tags, err := p.Forge.Tags(ctx)
	if err != nil {
		return nil, fmt.Errorf("read tags from %s: %w", p.Forge.Kind(), err)
	}
	if tags, err = p.ensureTagCommits(ctx, tags); err != nil {
		return nil, err
	}
	st := &state{tags: tags, sha: map[string]string{}}
	for _, t := range tags {
		st.sha[t.Name] = t.SHA
		if r, ok := version.ParseTag(t.Name); ok {
			st.rels = append(st.rels, r)
		}
	}
	return st, nil
}

// releaseAt returns the highest release of channel c at commit sha.
func (st *state) releaseAt(c version.Channel, sha string) (version.Release, bool) {
	var best version.Release
	found := false
	for _, r := range st.rels {
		if r.Channel == c && st.sha[r.Tag] == sha && (!found || r.Version.GreaterThan(best.Version)) {
			best, found = r, true
		}
	}
	return best, found
}

// RefusedError is a promotion refused by its channel's gates. It is
// wrapped in a clierr usage error (exit 2): nothing was changed.
type RefusedError struct {
	Channel version.Channel
	// Problems name the failed gates, one line each ("stage gate: ...").
	Problems []string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("promotion to %s refused (nothing was changed):\n  - %s", e.Channel, strings.Join(e.Problems, "\n  - "))
}

// refused returns the exit-2 error of a failed gate.
func refused(c version.Channel, problems []string) error {
	return clierr.Usage(&RefusedError{Channel: c, Problems: problems})
}

// ResolveRev turns --rev into a commit SHA, or a usage error naming the fix.
func ResolveRev(ctx context.Context, repo *gitrepo.Repo, rev string) (string, error) {
	if rev == "" {
		rev = "HEAD"
	}
	sha, err := repo.Resolve(ctx, rev)
	if err != nil {
		return "", clierr.Usagef("--rev %q does not name a commit of %s: pass a commit SHA, tag or branch (for example --rev HEAD)", rev, repo.Dir)
	}
	return sha, nil
}

// Plan checks the gate of o.Channel for o.Rev and computes the version. A
// failed gate is a clierr usage error that names the gate.
func (p *Promoter) Plan(ctx context.Context, o Options) (*Plan, error) {
	if o.Version.PhaseTag == nil {
		o.Version = version.DefaultConfig()
	}
	rev, err := ResolveRev(ctx, p.Repo, o.Rev)
	if err != nil {
		return nil, err
	}
	st, err := p.read(ctx)
	if err != nil {
		return nil, err
	}
	head, err := p.Forge.ChannelRef(ctx, string(o.Channel))
	if err != nil {
		return nil, fmt.Errorf("read channels/%s: %w", o.Channel, err)
	}
	plan := &Plan{Channel: o.Channel, Rev: rev, Head: head, ApprovedBy: o.ApprovedBy, repoURL: p.Forge.RepoURL(), attach: o.Attach}

	var problems []string
	// Gate: the previous channel.
	if prev, ok := o.Channel.Previous(); ok {
		if _, on := st.releaseAt(prev, rev); !on {
			problems = append(problems, fmt.Sprintf("channel gate: %s is not on %s; a commit reaches %s only from %s (run: ci release promote --to %s --rev %s)",
				shorthash.Commit(rev), prev, o.Channel, prev, prev, rev))
		}
	}
	// Gate: never an older commit than the channel's. The channel's latest
	// release counts when the commit or the channel's head reaches it; a
	// release tag made on another branch does not.
	heads := []string{head}
	counted, err := p.reachable(ctx, st, rev)
	if err != nil {
		return nil, err
	}
	if head != "" {
		fromHead, err := p.Repo.Reachable(ctx, head)
		if err != nil {
			return nil, fmt.Errorf("list the history of channels/%s: %w", o.Channel, err)
		}
		for _, r := range st.rels {
			if fromHead[st.sha[r.Tag]] {
				counted = append(counted, r)
			}
		}
	}
	if r, ok := version.Latest(counted, o.Channel); ok {
		heads = append(heads, st.sha[r.Tag])
	}
	for _, h := range heads {
		if msg, err := p.orderProblem(ctx, o.Channel, h, rev); err != nil {
			return nil, err
		} else if msg != "" {
			problems = append(problems, msg)
			break
		}
	}
	// Gate: the stages.
	recorded, err := p.Results.Get(ctx, rev)
	if err != nil {
		return nil, fmt.Errorf("read stage results of %s: %w", shorthash.Commit(rev), err)
	}
	problems = append(problems, stageProblems(o, p.gateStages(o.Channel), rev, recorded, plan)...)
	// Gate: approval.
	if o.Channel == version.Stable && strings.TrimSpace(o.ApprovedBy) == "" {
		problems = append(problems, "approval gate: stable needs an approval: pass --approved-by NAME, or run in a GitHub Actions environment with required reviewers that sets CI_APPROVED_BY")
	}
	if len(problems) > 0 {
		return nil, refused(o.Channel, problems)
	}

	if err := p.version(ctx, o, st, plan); err != nil {
		return nil, err
	}
	if err := p.render(ctx, o, st, plan); err != nil {
		return nil, err
	}
	return plan, nil
}

// stageProblems is the stage gate: every stage of the channel passed, for
// the flake and build report being released, on services started from the
// build (beta and stable, unless AllowExternalServices).
func stageProblems(o Options, stages []string, rev string, recorded map[string]results.Result, plan *Plan) []string {
	if o.Want.Flake == "" && o.Want.Report == "" {
		return []string{fmt.Sprintf("stage gate: no build report: pass --report FILE (the ci build report of %s); results count only for the flake and out paths they tested", shorthash.Commit(rev))}
	}
	refuseExternal := (o.Channel == version.Beta || o.Channel == version.Stable) && !o.AllowExternalServices
	var problems []string
	for _, s := range stages {
		r, ok := recorded[s]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("stage gate: %s has no result for %s (run: %s)", s, shorthash.Commit(rev), testCommand(s)))
		case !r.Binding.Matches(o.Want):
			problems = append(problems, fmt.Sprintf("stage gate: %s was %s for %s, but this release is %s (run: ci test --stage %s --flake FLAKE --report REPORT with the release's flake and build report)",
				s, r.State, r.Binding, o.Want, s))
		case r.State != results.StatePassed:
			msg := fmt.Sprintf("stage gate: %s is %s for %s", s, r.State, shorthash.Commit(rev))
			if r.Description != "" {
				msg += " (" + r.Description + ")"
			}
			problems = append(problems, msg)
		case r.External && refuseExternal:
			problems = append(problems, fmt.Sprintf("stage gate: %s tested an external service, not the services of this build; %s accepts that only with --allow-external-services (or run: ci test --stage %s without --external-services)",
				s, o.Channel, s))
		default:
			st := notes.Stage{Name: s, State: r.State, URL: r.URL}
			if r.External {
				st.State += " (external service)"
			}
			plan.Stages = append(plan.Stages, st)
		}
	}
	return problems
}

// orderProblem checks that rev may follow h on channel c.
func (p *Promoter) orderProblem(ctx context.Context, c version.Channel, h, rev string) (string, error) {
	if h == "" || h == rev {
		return "", nil
	}
	fwd, err := p.Repo.IsAncestor(ctx, h, rev)
	if err != nil {
		return "", fmt.Errorf("is %s an ancestor of %s (fetch the full history: git fetch --unshallow --tags): %w", shorthash.Commit(h), shorthash.Commit(rev), err)
	}
	if fwd {
		return "", nil
	}
	back, err := p.Repo.IsAncestor(ctx, rev, h)
	if err != nil {
		return "", err
	}
	if back {
		return fmt.Sprintf("order gate: %s is older than %s's %s; a channel never goes backwards", shorthash.Commit(rev), c, shorthash.Commit(h)), nil
	}
	return fmt.Sprintf("order gate: %s is not a descendant of %s's %s; channels/%s is only fast-forwarded", shorthash.Commit(rev), c, shorthash.Commit(h), c), nil
}

// version fills Tag, Bump, Resume, AlreadyStable and LastStable. Versions
// come from the release tags reachable from the commit; tags elsewhere only
// keep their names from being reused.
func (p *Promoter) version(ctx context.Context, o Options, st *state, plan *Plan) error {
	reachable, err := p.reachable(ctx, st, plan.Rev)
	if err != nil {
		return err
	}
	if o.Channel != version.Stable {
		if r, ok := st.releaseAt(version.Stable, plan.Rev); ok {
			plan.Tag, plan.AlreadyStable = r.Tag, r.Tag
			return nil
		}
	}
	from := ""
	if r, ok := version.Latest(reachable, version.Stable); ok {
		from, plan.LastStable = st.sha[r.Tag], r.Tag
	}
	commits, err := p.Repo.Log(ctx, from, plan.Rev)
	if err != nil {
		return fmt.Errorf("list commits since %s: %w", plan.LastStable, err)
	}
	inRange := map[string]bool{plan.Rev: true}
	for _, c := range commits {
		inRange[c.SHA] = true
	}
	var phase []string
	for _, t := range st.tags {
		if inRange[t.SHA] {
			phase = append(phase, t.Name)
		}
	}
	d := version.Decide(o.Version, o.Channel, version.Input{Releases: reachable, Taken: st.rels, Commits: commits, PhaseTags: phase})
	tag := d.Tag
	plan.Bump, plan.Phase, plan.PhaseVersion = d.Bump, d.Phase, d.PhaseVersion
	// An earlier run released this commit on the channel: finish that
	// release, unless a phase tag since raised the version (then the commit
	// gets a release of the new version too, so dev and beta say what
	// stable will be).
	if r, ok := st.releaseAt(o.Channel, plan.Rev); ok {
		want, _ := version.ParseTag(tag)
		if o.Channel == version.Stable || !r.Base().LessThan(want.Base()) {
			plan.Tag, plan.Resume = r.Tag, true
			return nil
		}
	}
	if _, taken := st.sha[tag]; taken {
		// Counters come from the tags, so this only happens when a tag
		// appeared between reads; Execute re-plans.
		return fmt.Errorf("tag %s already exists on another commit: %w", tag, forge.ErrExists)
	}
	plan.Tag = tag
	return nil
}

// render fills Previous, Notes and Manifest.
func (p *Promoter) render(ctx context.Context, o Options, st *state, plan *Plan) error {
	if plan.AlreadyStable != "" {
		return nil
	}
	reachable, err := p.reachable(ctx, st, plan.Rev)
	if err != nil {
		return err
	}
	cur, _ := version.ParseTag(plan.Tag)
	var prev version.Release
	found := false
	for _, r := range reachable {
		if r.Channel == o.Channel && r.Version.LessThan(cur.Version) && (!found || r.Version.GreaterThan(prev.Version)) {
			prev, found = r, true
		}
	}
	from := ""
	if found {
		plan.Previous, from = prev.Tag, st.sha[prev.Tag]
	} else if r, ok := version.Latest(reachable, version.Stable); ok && r.Version.LessThan(cur.Version) {
		from = st.sha[r.Tag]
	}
	commits, err := p.Repo.Log(ctx, from, plan.Rev)
	if err != nil {
		return err
	}
	plan.Notes = notes.Render(notes.Notes{
		Tag: plan.Tag, Channel: o.Channel, Rev: plan.Rev, Previous: plan.Previous, RepoURL: plan.repoURL,
		Commits: commits, Stages: plan.Stages, ApprovedBy: plan.ApprovedBy,
		Compat: p.compat(ctx, o.Channel, plan.Rev),
	})
	m := Manifest{Version: plan.Tag, Channel: string(o.Channel), Rev: plan.Rev, Outputs: map[string]string{},
		Cache: o.Cache, PublicKey: o.PublicKey, ApprovedBy: plan.ApprovedBy}
	if rep := o.Report; rep != nil {
		if rep.Rev != "" && rep.Rev != plan.Rev {
			return clierr.Usagef("--report is the build of %s, not of %s: pass the report of the commit being promoted", shorthash.Commit(rep.Rev), shorthash.Commit(plan.Rev))
		}
		for _, out := range rep.Outputs {
			if out.Available() {
				m.Outputs[out.Attr] = out.OutPaths[0]
			}
		}
		if m.Cache == "" {
			m.Cache = rep.Cache
		}
	}
	plan.Manifest = m
	return nil
}

// Step is one effect of Execute.
type Step struct {
	Name    string
	Changed bool
	Detail  string
}

// Outcome is what Execute did.
type Outcome struct {
	Plan    *Plan
	Steps   []Step
	Release *forge.Release
	// NotifyErrors are notification failures: reported, never fatal.
	NotifyErrors []error
}

// Changed reports whether any step changed anything.
func (o *Outcome) Changed() bool {
	for _, s := range o.Steps {
		if s.Changed {
			return true
		}
	}
	return false
}

// errReplan asks Run to read the state again and decide again.
var errReplan = errors.New("state changed concurrently")

// maxAttempts bounds re-planning after concurrent changes.
const maxAttempts = 5

// Run plans and executes a promotion (or, with DryRun, only plans).
func (p *Promoter) Run(ctx context.Context, o Options) (*Outcome, error) {
	var lastErr error
	for attempt := 0; attempt < maxAttempts; attempt++ {
		plan, err := p.Plan(ctx, o)
		if errors.Is(err, forge.ErrExists) {
			lastErr = err
			continue
		}
		if err != nil {
			return nil, err
		}
		if o.DryRun || plan.AlreadyStable != "" {
			return &Outcome{Plan: plan}, nil
		}
		out, err := p.execute(ctx, plan)
		if errors.Is(err, errReplan) {
			lastErr = err
			continue
		}
		return out, err
	}
	return nil, clierr.Failedf("promotion to %s: the repository kept changing under it (%v); run it again", o.Channel, lastErr)
}

func (p *Promoter) execute(ctx context.Context, plan *Plan) (*Outcome, error) {
	out := &Outcome{Plan: plan}
	step := func(name string, changed bool, format string, args ...any) {
		out.Steps = append(out.Steps, Step{Name: name, Changed: changed, Detail: fmt.Sprintf(format, args...)})
	}

	// The release of the tag, when one exists, must name this commit: a
	// release left by a tag that was deleted or moved is not this release.
	rel, err := p.Forge.Release(ctx, plan.Tag)
	if err != nil {
		return out, fmt.Errorf("read release %s: %w", plan.Tag, err)
	}
	if err := releaseMismatch(plan, rel); err != nil {
		if !plan.Resume {
			// A concurrent run may have just made this tag and its
			// release for another commit: then decide again.
			st, rerr := p.read(ctx)
			if rerr != nil {
				return out, rerr
			}
			if _, made := st.sha[plan.Tag]; made {
				return nil, errReplan
			}
		}
		return out, err
	}

	// 1. Tag.
	if plan.Resume {
		step("tag", false, "%s already points at %s", plan.Tag, shorthash.Commit(plan.Rev))
	} else {
		err := p.Forge.CreateTag(ctx, plan.Tag, plan.Rev)
		if errors.Is(err, forge.ErrExists) {
			return nil, errReplan
		}
		if err != nil {
			return out, fmt.Errorf("create tag %s: %w", plan.Tag, err)
		}
		step("tag", true, "created %s at %s", plan.Tag, shorthash.Commit(plan.Rev))
	}

	// 2. Channel ref, fast-forward only.
	if err := p.moveRef(ctx, plan, step); err != nil {
		return out, err
	}

	// 3. Release.
	rel, err = p.publishRelease(ctx, plan, rel, step)
	if err != nil {
		return out, err
	}
	out.Release = rel

	// 4. Manifest asset.
	if err := p.attachManifest(ctx, plan, rel, step); err != nil {
		return out, err
	}

	// 4b. Evidence next to the manifest (provenance).
	if err := p.attachEvidence(ctx, plan, rel, step); err != nil {
		return out, err
	}

	// 5. Notification.
	return out, p.notifyOnce(ctx, plan, rel, out, step)
}

// stepFunc records a step of a promotion.
type stepFunc = func(name string, changed bool, format string, args ...any)

// publishRelease creates the tag's release unless rel (the existing one)
// is there, and checks that it names the plan's commit.
func (p *Promoter) publishRelease(ctx context.Context, plan *Plan, rel *forge.Release, step stepFunc) (*forge.Release, error) {
	var err error
	if rel == nil {
		want := forge.Release{Tag: plan.Tag, Name: plan.Tag, Body: plan.Notes, Rev: plan.Rev,
			Prerelease: plan.Channel != version.Stable, Latest: plan.Channel == version.Stable}
		rel, err = p.Forge.CreateRelease(ctx, want)
		if errors.Is(err, forge.ErrExists) {
			rel, err = p.Forge.Release(ctx, plan.Tag)
			if err == nil && rel == nil {
				err = fmt.Errorf("release %s exists but cannot be read", plan.Tag)
			}
			if err != nil {
				return nil, err
			}
			step("release", false, "%s published concurrently: %s", plan.Tag, rel.URL)
		} else if err != nil {
			return nil, fmt.Errorf("create release %s: %w", plan.Tag, err)
		} else {
			kind := "latest"
			if want.Prerelease {
				kind = "pre-release"
			}
			step("release", true, "published %s (%s): %s", plan.Tag, kind, rel.URL)
		}
	} else {
		step("release", false, "%s already published: %s", plan.Tag, rel.URL)
	}
	if err := releaseMismatch(plan, rel); err != nil {
		return nil, err
	}
	return rel, nil
}

// attachManifest attaches the manifest asset once.
func (p *Promoter) attachManifest(ctx context.Context, plan *Plan, rel *forge.Release, step stepFunc) error {
	if rel.HasAsset(forge.ManifestAsset) {
		step("manifest", false, "%s already attached", forge.ManifestAsset)
	} else {
		err := p.Forge.UploadAsset(ctx, rel, forge.ManifestAsset, plan.ManifestJSON())
		switch {
		case errors.Is(err, forge.ErrExists):
			step("manifest", false, "%s attached concurrently", forge.ManifestAsset)
		case err != nil:
			return fmt.Errorf("upload %s to %s: %w", forge.ManifestAsset, plan.Tag, err)
		default:
			step("manifest", true, "attached %s", forge.ManifestAsset)
		}
	}
	return nil
}

// notifyOnce sends the promotion's notification at most once even when
// promotions race: a run first claims the notification by attaching
// notify-N.json (only one run can attach it), then sends. A failed send is
// recorded as notify-N.failed, so a rerun claims N+1 and tries again. Its
// failure never fails the release (it is in out.NotifyErrors).
func (p *Promoter) notifyOnce(ctx context.Context, plan *Plan, rel *forge.Release, out *Outcome, step stepFunc) error {
	if strings.Contains(rel.Body, forge.NotifiedMarker) {
		step("notify", false, "already sent")
		return nil
	}
	claim, sent := nextClaim(rel)
	if sent {
		step("notify", false, "already sent (or being sent by a concurrent run)")
		return nil
	}
	err := p.Forge.UploadAsset(ctx, rel, claim+".json", []byte(fmt.Sprintf("{\"tag\":%q,\"target\":%q}\n", plan.Tag, p.Notifier.Target())))
	if errors.Is(err, forge.ErrExists) {
		step("notify", false, "being sent by a concurrent run")
		return nil
	}
	if err != nil {
		return fmt.Errorf("claim the notification of %s: %w", plan.Tag, err)
	}
	msg := slack.PromotionMessage(slack.Promotion{Tag: plan.Tag, Channel: string(plan.Channel), Rev: plan.Rev,
		Previous: plan.Previous, RepoURL: plan.repoURL, ReleaseURL: rel.URL, ApprovedBy: plan.ApprovedBy})
	if err := p.Notifier.Notify(ctx, msg); err != nil {
		out.NotifyErrors = append(out.NotifyErrors, err)
		if ferr := p.Forge.UploadAsset(ctx, rel, claim+".failed", []byte(err.Error()+"\n")); ferr != nil && !errors.Is(ferr, forge.ErrExists) {
			step("notify", false, "FAILED (%v), and the failure could not be recorded (%v): it will not be sent again", err, ferr)
			return nil
		}
		step("notify", false, "FAILED (%v); rerun the promotion to send it", err)
		return nil
	}
	if err := p.Forge.EditBody(ctx, rel, strings.TrimRight(rel.Body, "\n")+"\n\n"+forge.NotifiedMarker+"\n"); err != nil {
		return fmt.Errorf("mark %s as notified: %w", plan.Tag, err)
	}
	step("notify", true, "sent to %s", p.Notifier.Target())
	return nil
}

func (p *Promoter) moveRef(ctx context.Context, plan *Plan, step stepFunc) error {
	name := "channels/" + string(plan.Channel)
	for attempt := 0; attempt < maxAttempts; attempt++ {
		// The plan read the ref moments ago; read it again only after a
		// move was refused (it moved concurrently).
		cur := plan.Head
		if attempt > 0 {
			var err error
			if cur, err = p.Forge.ChannelRef(ctx, string(plan.Channel)); err != nil {
				return fmt.Errorf("read %s: %w", name, err)
			}
		}
		if cur == plan.Rev {
			step("ref", false, "%s already at %s", name, shorthash.Commit(plan.Rev))
			return nil
		}
		if cur != "" {
			fwd, err := p.Repo.IsAncestor(ctx, cur, plan.Rev)
			if err != nil {
				return err
			}
			if !fwd {
				return clierr.Failedf("%s moved to %s, which %s cannot fast-forward; %s stays tagged but %s keeps %s",
					name, shorthash.Commit(cur), shorthash.Commit(plan.Rev), plan.Tag, name, shorthash.Commit(cur))
			}
		}
		err := p.Forge.SetChannelRef(ctx, string(plan.Channel), cur, plan.Rev)
		if errors.Is(err, forge.ErrExists) || errors.Is(err, forge.ErrNotFastForward) {
			continue // moved concurrently: read again
		}
		if err != nil {
			return fmt.Errorf("move %s: %w", name, err)
		}
		if cur == "" {
			step("ref", true, "created %s at %s", name, shorthash.Commit(plan.Rev))
		} else {
			step("ref", true, "fast-forwarded %s %s → %s", name, shorthash.Commit(cur), shorthash.Commit(plan.Rev))
		}
		return nil
	}
	return clierr.Failedf("%s kept moving; run the promotion again", name)
}

// Print writes a plan in human form.
func Print(w io.Writer, plan *Plan, dryRun bool) {
	verb := "promote"
	if dryRun {
		verb = "would promote"
	}
	since := "no stable release yet"
	if plan.LastStable != "" {
		since = "since " + plan.LastStable
	}
	bump := plan.Bump.String() + " bump"
	if plan.Bump == version.Major && strings.HasPrefix(plan.Tag, "v0.") {
		bump = "breaking change: minor bump below 1.0.0"
	}
	if plan.AlreadyStable != "" {
		fmt.Fprintf(w, "%s is already released as stable %s: it is not promoted to %s again; nothing to do\n", shorthash.Commit(plan.Rev), plan.AlreadyStable, plan.Channel)
		return
	}
	why := fmt.Sprintf("%s, %s", bump, since)
	if plan.Phase != "" {
		why = fmt.Sprintf("%s stands for %s", plan.Phase, plan.PhaseVersion)
	}
	if plan.Resume {
		why = "released by an earlier run"
	}
	fmt.Fprintf(w, "%s %s to %s as %s (%s)\n", verb, shorthash.Commit(plan.Rev), plan.Channel, plan.Tag, why)
	var gate []string
	for _, s := range plan.Stages {
		gate = append(gate, s.Name+" "+s.State)
	}
	fmt.Fprintf(w, "gate %s: %s", plan.Channel, strings.Join(gate, ", "))
	if plan.ApprovedBy != "" {
		fmt.Fprintf(w, "; approved by %s", plan.ApprovedBy)
	}
	fmt.Fprintln(w)
	if plan.Resume {
		fmt.Fprintf(w, "%s already points at %s (an earlier run made it): checking the remaining steps\n", plan.Tag, shorthash.Commit(plan.Rev))
	}
}

// PrintRelease writes the release notes and manifest.
func PrintRelease(w io.Writer, plan *Plan) {
	fmt.Fprintf(w, "\n--- release %s ---\n%s\n--- %s ---\n%s", plan.Tag, plan.Notes, forge.ManifestAsset, plan.ManifestJSON())
}

// releaseMismatch refuses a release that names another commit than the
// plan's: its tag was moved, or deleted and made again elsewhere.
func releaseMismatch(plan *Plan, rel *forge.Release) error {
	if rel == nil || rel.Rev == "" || rel.Rev == plan.Rev {
		return nil
	}
	return clierr.Failedf("release %s names commit %s but the tag %s is (or would be) at %s: the tag was moved or deleted by hand after the release.\n"+
		"  Put the tag back (git tag -f %s %s && git push -f origin refs/tags/%s), or delete the release and the tag to release %s again",
		plan.Tag, shorthash.Commit(rel.Rev), plan.Tag, shorthash.Commit(plan.Rev), plan.Tag, rel.Rev, plan.Tag, shorthash.Commit(plan.Rev))
}

// nextClaim returns the name of the next notification claim of rel
// (notify-N) and whether a claim already stands (sent, or being sent):
// the highest claim without a recorded failure.
func nextClaim(rel *forge.Release) (name string, sent bool) {
	n := 0
	for rel.HasAsset(fmt.Sprintf("notify-%d.json", n+1)) {
		n++
	}
	if n > 0 && !rel.HasAsset(fmt.Sprintf("notify-%d.failed", n)) {
		return "", true
	}
	return fmt.Sprintf("notify-%d", n+1), false
}

// ensureHistory makes sure the clone has the whole history: versions and
// gates read it. A shallow clone is deepened from its remote when it has
// one, else refused with the fix; a local repository whose remote tags were
// never fetched gets them.
func (p *Promoter) ensureHistory(ctx context.Context) error {
	if p.historyChecked {
		return nil
	}
	shallow, err := p.Repo.IsShallow(ctx)
	if err != nil {
		return err
	}
	remote := p.Repo.Remote(ctx)
	switch {
	case shallow && remote == "":
		return clierr.Usagef("%s is a shallow clone (git clone --depth) with no remote to fetch from: versions come from the whole history and its tags; clone it again without --depth", p.Repo.Dir)
	case shallow:
		p.note("note: %s is a shallow clone: fetching the whole history and the tags from %s\n", p.Repo.Dir, remote)
		if err := p.Repo.FetchHistory(ctx, remote, true); err != nil {
			return clierr.Usagef("%s is a shallow clone and fetching its history failed (%v): run git fetch --unshallow --tags %s (in GitHub Actions: actions/checkout with fetch-depth: 0)", p.Repo.Dir, err, remote)
		}
	case remote != "" && p.Forge.Kind() == "local":
		if tags, err := p.Repo.Tags(ctx); err == nil && len(tags) == 0 {
			if err := p.Repo.FetchHistory(ctx, remote, false); err != nil {
				p.note("warning: this clone has no tags and fetching them from %s failed (%v): versions count from v0.0.0\n", remote, err)
			} else {
				p.note("note: this clone had no tags: fetched them from %s\n", remote)
			}
		}
	}
	p.historyChecked = true
	return nil
}

// ensureTagCommits checks that the clone has the commits the release and
// phase tags point at (GitHub's tags may be ahead of the clone); it fetches
// the tags once when some are missing, else refuses with the fix.
func (p *Promoter) ensureTagCommits(ctx context.Context, tags []forge.Tag) ([]forge.Tag, error) {
	var shas []string
	for _, t := range tags {
		if _, ok := version.ParseTag(t.Name); ok || version.DefaultConfig().PhaseTag.MatchString(t.Name) {
			shas = append(shas, t.SHA)
		}
	}
	for attempt := 0; ; attempt++ {
		have, err := p.Repo.Commits(ctx, shas)
		if err != nil {
			return nil, err
		}
		var missing []string
		for _, t := range tags {
			if slices.Contains(shas, t.SHA) && !have[t.SHA] {
				missing = append(missing, t.Name)
			}
		}
		if len(missing) == 0 {
			return tags, nil
		}
		remote := p.Repo.Remote(ctx)
		if attempt > 0 || remote == "" {
			return nil, clierr.Usagef("this clone lacks the commits of the tags %s: fetch them (git fetch --tags; in GitHub Actions: actions/checkout with fetch-depth: 0)", strings.Join(missing, ", "))
		}
		p.note("note: fetching the tags %s from %s\n", strings.Join(missing, ", "), remote)
		if err := p.Repo.FetchHistory(ctx, remote, false); err != nil {
			return nil, clierr.Usagef("this clone lacks the commits of the tags %s and fetching them failed (%v): run git fetch --tags %s", strings.Join(missing, ", "), err, remote)
		}
	}
}

// reachable returns the release tags whose commits rev reaches.
func (p *Promoter) reachable(ctx context.Context, st *state, rev string) ([]version.Release, error) {
	if st.reach == nil || st.reachOf != rev {
		set, err := p.Repo.Reachable(ctx, rev)
		if err != nil {
			return nil, fmt.Errorf("list the history of %s: %w", shorthash.Commit(rev), err)
		}
		st.reach, st.reachOf = set, rev
	}
	var out []version.Release
	for _, r := range st.rels {
		if st.reach[st.sha[r.Tag]] {
			out = append(out, r)
		}
	}
	return out, nil
}

func (p *Promoter) note(format string, args ...any) {
	if p.Log != nil {
		fmt.Fprintf(p.Log, format, args...)
	}
}
