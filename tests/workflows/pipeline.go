package workflows

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v4"
)

// The rules about the pipeline's order and its gates.
const (
	// RulePromotionNeeds: a promoting job needs (directly or through the
	// jobs it needs) the jobs of the same run that ran every stage its
	// channel requires, and nothing on that chain lets a failed or skipped
	// job through (no always(), failure(), cancelled() in `if:`, no
	// continue-on-error).
	RulePromotionNeeds = "promotion-needs"
	// RuleReleaseRef: a promoting job that a run started by hand or by a tag
	// can reach needs a job running `go run ./ci release check-ref`, so only
	// main and phase tags on main are released.
	RuleReleaseRef = "release-ref"
	// RuleGoTests: a workflow that builds, pushes or promotes has a job that
	// runs `go vet ./...` and the tests with the race detector, and those
	// jobs need it.
	RuleGoTests = "go-tests"
	// RuleNoRebuild: only build jobs build. A job that runs stages, pushes or
	// promotes never runs `ci build` (an evaluation with --dry-run excepted);
	// in a workflow that pushes, builds that pushes can start fill the
	// staging cache (--push-to) so later jobs substitute.
	RuleNoRebuild = "no-rebuild"
	// RulePRResultsOnHead: stage results of a pull request are recorded on
	// its head commit: no `ci test` that a pull request runs passes
	// GITHUB_SHA (GitHub's merge commit) as --rev or overrides GITHUB_SHA.
	RulePRResultsOnHead = "pull-request-head"
	// RuleStagingKey: a step that runs `ci push --from` has
	// NIX_STAGING_PUBLIC_KEY in its env (its own or its job's), so that the
	// push checks the signatures of what it fetches before the release key
	// signs it, and never passes --allow-unsigned-from.
	RuleStagingKey = "staging-key"
	// RuleDaggerPinned: the dagger CLI is installed at a literal version and
	// checked with sha256sum, never piped from an install script.
	RuleDaggerPinned = "dagger-cli-pinned"
)

// ChannelStages are the stages each channel's gate requires (release/version).
var ChannelStages = map[string][]string{
	"dev":    {"unit"},
	"beta":   {"unit", "integration"},
	"stable": {"unit", "integration", "performance", "security"},
}

var (
	toChannel    = regexp.MustCompile(`--to[ =](dev|beta|stable)\b`)
	ciBuild      = regexp.MustCompile(`go run \./ci build\b`)
	ciPush       = regexp.MustCompile(`go run \./ci push\b`)
	ciPushFrom   = regexp.MustCompile(`go run \./ci push\b.*\s--from[ =]`)
	ciMatrix     = regexp.MustCompile(`go run \./ci matrix\b`)
	checkRef     = regexp.MustCompile(`go run \./ci release check-ref\b`)
	goVet        = regexp.MustCompile(`\bgo vet \./\.\.\.`)
	goRace       = regexp.MustCompile(`(\bgo test\b|\.ci/run\b).*\s-race\b`)
	statusFunc   = regexp.MustCompile(`\b(always|failure|cancelled)\s*\(`)
	revGitHubSHA = regexp.MustCompile(`--rev[ =]"?(\$\{?GITHUB_SHA\b|\$\{\{\s*github\.sha)`)
	daggerFetch  = regexp.MustCompile(`dl\.dagger\.io|github\.com/dagger/dagger/releases|dagger/dagger-for-github`)
	pipeToShell  = regexp.MustCompile(`\|\s*(ba|z)?sh\b`)
	flakeFlag    = regexp.MustCompile(`--flake[ =]"?([^"\s]+)`)
	daggerVer    = regexp.MustCompile(`(?m)^\s*DAGGER_VERSION:\s*v?\d+\.\d+\.\d+\s*$|version:\s*"?v?\d+\.\d+\.\d+`)
)

// highestChannel is the highest channel any `ci release promote` in runs
// promotes to.
func highestChannel(runs []string) string {
	best := ""
	rank := map[string]int{"": 0, "dev": 1, "beta": 2, "stable": 3}
	for _, r := range runs {
		for _, line := range strings.Split(r, "\n") {
			if !ciPromote.MatchString(line) {
				continue
			}
			for _, m := range toChannel.FindAllStringSubmatch(line, -1) {
				if rank[m[1]] > rank[best] {
					best = m[1]
				}
			}
		}
	}
	if best == "" {
		return "dev"
	}
	return best
}

// needsOf lists a job's direct needs.
func needsOf(job *yaml.Node) []string {
	n := get(job, "needs")
	if s := scalar(n); s != "" {
		return []string{s}
	}
	var out []string
	for _, d := range seq(n) {
		out = append(out, d.Value)
	}
	return out
}

// chain returns job and every job it needs, transitively, in a stable order.
func (c *checker) chain(job string) []string {
	var out []string
	seen := map[string]bool{}
	var visit func(string)
	visit = func(j string) {
		if seen[j] {
			return
		}
		seen[j] = true
		out = append(out, j)
		for _, d := range needsOf(c.jobs[j]) {
			visit(d)
		}
	}
	visit(job)
	return out
}

func (c *checker) jobRuns(job string) []string {
	return runScripts(seq(get(c.jobs[job], "steps")))
}

func anyMatch(runs []string, re *regexp.Regexp) bool {
	return slices.ContainsFunc(runs, re.MatchString)
}

// stagesRun lists the stages a job runs: literal --stage names, and for a
// job whose stage comes from a matrix, the stages that the `ci matrix`
// commands of the jobs it needs select.
func (c *checker) stagesRun(job string) []string {
	var out []string
	dynamic := false
	for _, r := range c.jobRuns(job) {
		for _, line := range strings.Split(r, "\n") {
			if !ciTest.MatchString(line) {
				continue
			}
			m := literalStage.FindAllStringSubmatch(line, -1)
			if len(m) == 0 && strings.Contains(line, "--stage") {
				dynamic = true
			}
			for _, s := range m {
				out = append(out, s[1])
			}
			if strings.Contains(line, "--all") {
				out = append(out, ChannelStages["stable"]...)
			}
		}
	}
	if dynamic {
		for _, d := range c.chain(job)[1:] {
			for _, r := range c.jobRuns(d) {
				for _, line := range strings.Split(r, "\n") {
					if ciMatrix.MatchString(line) {
						for _, s := range literalStage.FindAllStringSubmatch(line, -1) {
							out = append(out, s[1])
						}
					}
				}
			}
		}
	}
	return out
}

func (c *checker) promotionNeeds(name string, key, job *yaml.Node, channel string) {
	chain := c.chain(name)
	covered := map[string]bool{}
	for _, j := range chain {
		for _, s := range c.stagesRun(j) {
			covered[s] = true
		}
		n := c.jobs[j]
		if cond := get(n, "if"); cond != nil && statusFunc.MatchString(cond.Value) {
			c.add(cond, name, RulePromotionNeeds, "job %s on the way to the %s promotion runs whatever its needs did (%s): a failed stage job must stop the promotion", j, channel, strings.TrimSpace(cond.Value))
		}
		if coe := get(n, "continue-on-error"); coe != nil && coe.Value != "false" {
			c.add(coe, name, RulePromotionNeeds, "job %s on the way to the %s promotion has continue-on-error: a failed stage job must stop the promotion", j, channel)
		}
	}
	for _, s := range ChannelStages[channel] {
		if !covered[s] {
			c.add(key, name, RulePromotionNeeds, "promotes to %s without needing a job of this run that runs the %s stage", channel, s)
		}
	}
}

// pipelineOrder checks the go tests, the release ref and that nothing after
// the build builds.
func (c *checker) pipelineOrder(name string, key, job *yaml.Node, runs []string, events []string) {
	builds := false
	for _, r := range runs {
		for _, line := range strings.Split(r, "\n") {
			if buildsThisFlake(line) {
				builds = true
			}
		}
	}
	pushes, promotes := anyMatch(runs, ciPush), anyMatch(runs, ciPromote)
	stagesOrRelease := anyMatch(runs, ciTest) || pushes || anyMatch(runs, ciRelease)

	if builds && stagesOrRelease {
		c.add(key, name, RuleNoRebuild, "builds in a job that runs stages, pushes or promotes: build in the build jobs and substitute from the staging cache")
	}
	if builds && c.workflowPushes() && slices.Contains(events, "push") {
		if t, _ := EvalCondition(scalar(get(job, "if")), PushToMain()); t != False {
			for _, st := range seq(get(job, "steps")) {
				for _, line := range strings.Split(scalar(get(st, "run")), "\n") {
					if !buildsThisFlake(line) || strings.Contains(line, "--push-to") {
						continue
					}
					if t, _ := EvalCondition(scalar(get(st, "if")), PushToMain()); t != False {
						c.add(get(st, "run"), name, RuleNoRebuild, "a build for a push does not fill the staging cache (--push-to): the later jobs would build again")
					}
				}
			}
		}
	}

	if (builds || pushes || promotes) && c.workflowPushesOrPromotes() {
		if !c.hasGoTests() {
			c.add(key, name, RuleGoTests, "the workflow builds, pushes or promotes but no job runs `go vet ./...` and the tests with -race")
		} else if !slices.ContainsFunc(c.chain(name)[1:], func(j string) bool { return c.runsGoTests(j) }) {
			c.add(key, name, RuleGoTests, "does not need the job that runs go vet and the tests")
		}
	}

	if promotes {
		for _, ctx := range []Context{WorkflowDispatch(), TagPush("phase4-complete")} {
			if !c.triggeredBy(ctx) {
				continue
			}
			if t, _ := EvalCondition(scalar(get(job, "if")), ctx); t == False {
				continue
			}
			if !slices.ContainsFunc(c.chain(name), func(j string) bool { return anyMatch(c.jobRuns(j), checkRef) }) {
				c.add(key, name, RuleReleaseRef, "promotes on %s without needing a job that runs `go run ./ci release check-ref`", scalarCtx(ctx, "event_name"))
				break
			}
		}
	}
}

// buildsThisFlake reports whether a command line builds the repository's
// flake (an evaluation with --dry-run, or a build of another flake such as
// an example, does not count).
func buildsThisFlake(line string) bool {
	if !ciBuild.MatchString(line) || strings.Contains(line, "--dry-run") {
		return false
	}
	m := flakeFlag.FindStringSubmatch(line)
	return m == nil || m[1] == "." || m[1] == "./"
}

// triggeredBy reports whether the workflow starts for ctx's event: a run by
// hand, or a pushed tag (a push trigger with tags).
func (c *checker) triggeredBy(ctx Context) bool {
	on := get(c.root, "on")
	ev := scalarCtx(ctx, "event_name")
	if !slices.Contains(triggers(on), ev) {
		return false
	}
	if ev == "push" && scalarCtx(ctx, "ref_type") == "tag" {
		push := get(on, "push")
		return push == nil || push.Kind != yaml.MappingNode || get(push, "tags") != nil ||
			(get(push, "branches") == nil && get(push, "branches-ignore") == nil)
	}
	return true
}

func (c *checker) workflowPushesOrPromotes() bool {
	for j := range c.jobs {
		if runs := c.jobRuns(j); anyMatch(runs, ciPush) || anyMatch(runs, ciPromote) {
			return true
		}
	}
	return false
}

func (c *checker) workflowPushes() bool {
	for j := range c.jobs {
		if anyMatch(c.jobRuns(j), ciPush) {
			return true
		}
	}
	return false
}

func (c *checker) runsGoTests(job string) bool {
	runs := c.jobRuns(job)
	return anyMatch(runs, goVet) && anyMatch(runs, goRace)
}

func (c *checker) hasGoTests() bool {
	for j := range c.jobs {
		if c.runsGoTests(j) {
			return true
		}
	}
	return false
}

// daggerCLI checks how a job installs the dagger CLI.
func (c *checker) daggerCLI(name string, steps []*yaml.Node) {
	for _, s := range steps {
		r := get(s, "run")
		u := get(s, "uses")
		text := scalar(r)
		if u != nil {
			text = u.Value
		}
		if !daggerFetch.MatchString(text) {
			continue
		}
		at := r
		if at == nil {
			at = u
		}
		if u == nil && pipeToShell.MatchString(text) {
			c.add(at, name, RuleDaggerPinned, "installs the dagger CLI by piping a script to a shell: download the pinned release and check its sha256")
			continue
		}
		job := c.jobs[name]
		versioned := daggerVer.MatchString(text) || daggerVer.MatchString(nodeText(get(s, "env"))) ||
			daggerVer.MatchString(nodeText(get(s, "with"))) || daggerVer.MatchString(nodeText(get(job, "env")))
		if !versioned {
			c.add(at, name, RuleDaggerPinned, "installs the dagger CLI without a literal version (DAGGER_VERSION: X.Y.Z)")
		}
		if u == nil && !regexp.MustCompile(`sha256sum (--check|-c)\b`).MatchString(text) {
			c.add(at, name, RuleDaggerPinned, "installs the dagger CLI without checking its sha256 (sha256sum --check)")
		}
	}
}

// stagingKey checks that a `ci push --from` step gets the staging cache's
// public key and does not turn the signature check off.
func (c *checker) stagingKey(name string, job *yaml.Node, steps []*yaml.Node) {
	for _, s := range steps {
		run := get(s, "run")
		if !ciPushFrom.MatchString(scalar(run)) {
			continue
		}
		if get(get(s, "env"), "NIX_STAGING_PUBLIC_KEY") == nil && get(get(job, "env"), "NIX_STAGING_PUBLIC_KEY") == nil {
			c.add(run, name, RuleStagingKey, "ci push --from without NIX_STAGING_PUBLIC_KEY in its env: set it to ${{ vars.NIX_STAGING_PUBLIC_KEY }} so the push checks what it fetches before signing it")
		}
		if strings.Contains(scalar(run), "--allow-unsigned-from") {
			c.add(run, name, RuleStagingKey, "ci push --allow-unsigned-from signs whatever the staging cache holds: pass NIX_STAGING_PUBLIC_KEY instead")
		}
	}
}

// resultsOnHead checks that a pull request's stage results land on its head.
func (c *checker) resultsOnHead(name string, job *yaml.Node, steps []*yaml.Node, prEvents []string) {
	for _, ev := range prEvents {
		if t, _ := EvalCondition(scalar(get(job, "if")), SameRepoPullRequest(ev)); t == False {
			continue
		}
		for _, s := range steps {
			r := scalar(get(s, "run"))
			if !ciTest.MatchString(r) {
				continue
			}
			if revGitHubSHA.MatchString(r) {
				c.add(get(s, "run"), name, RulePRResultsOnHead, "records a %s's results on GITHUB_SHA, GitHub's merge commit: leave --rev out (ci test uses the pull request's head)", ev)
			}
			if e := get(get(s, "env"), "GITHUB_SHA"); e != nil {
				c.add(e, name, RulePRResultsOnHead, "overrides GITHUB_SHA for ci test: leave it to ci test to record on the pull request's head")
			}
		}
		return
	}
}

// nodeText joins the scalars under n.
func nodeText(n *yaml.Node) string {
	var b strings.Builder
	walk(n, func(s *yaml.Node) { fmt.Fprintf(&b, "%s\n", s.Value) })
	if n != nil && n.Kind == yaml.MappingNode {
		b.Reset()
		for i := 0; i+1 < len(n.Content); i += 2 {
			fmt.Fprintf(&b, "%s: %s\n", n.Content[i].Value, n.Content[i+1].Value)
		}
	}
	return b.String()
}

// selfHostedFor is selfHosted with runs-on expressions evaluated under ctx:
// an expression that ctx fixes to GitHub-hosted labels is not self-hosted.
func selfHostedFor(n *yaml.Node, ctx Context) (string, bool) {
	if n != nil && n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "${{") {
		v, ok, err := EvalValue(n.Value, ctx)
		if err == nil && ok {
			labels := []string{}
			switch x := v.(type) {
			case string:
				labels = append(labels, x)
			case []any:
				for _, e := range x {
					labels = append(labels, toString(e))
				}
			}
			if len(labels) > 0 && !slices.ContainsFunc(labels, func(l string) bool { return strings.EqualFold(l, "self-hosted") }) {
				return "", false
			}
			if len(labels) > 0 {
				return fmt.Sprintf("%v", labels), true
			}
		}
	}
	return selfHosted(n)
}

func scalarCtx(ctx Context, key string) string {
	g, _ := ctx["github"].(map[string]any)
	s, _ := g[key].(string)
	return s
}
