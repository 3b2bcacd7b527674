// Package workflows checks the repository's GitHub Actions workflows: they
// pass actionlint, and they keep the project's safety policy — pinned
// actions, least privilege, no self-hosted runner for any pull request, no
// secrets for pull requests from forks, a time limit on every job,
// promotions gated on the stage jobs of their own run, serialised per
// channel and started only from main.
package workflows

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v4"
)

// Rule names, as reported in a Violation.
const (
	// RulePinned: every action and reusable workflow is referenced by a full
	// 40-hex commit SHA (local `./` actions and `docker://` images excepted).
	RulePinned = "pinned-actions"
	// RuleVersionComment: a pinned reference says which release it is
	// (`@<sha> # v4.2.2`), so humans and Dependabot can read it.
	RuleVersionComment = "version-comment"
	// RulePRTargetCheckout: a pull_request_target workflow never checks out
	// or fetches the pull request's head.
	RulePRTargetCheckout = "pull-request-target-checkout"
	// RulePRSelfHosted: a job that can run for any pull request (from a fork
	// or from a branch of the repository) never runs on a self-hosted runner
	// (a runs-on expression counts unless it evaluates to a GitHub-hosted
	// label for pull requests). For pull requests GitHub takes the workflow
	// file from the pull request, so only triggers keep forks away.
	RulePRSelfHosted = "pull-request-self-hosted"
	// RuleForkSecrets: a job or step that can run for a fork's pull request
	// reads no secret (GITHUB_TOKEN excepted: GitHub hands forks a read-only
	// one) and uses no deployment environment.
	RuleForkSecrets = "fork-secrets"
	// RuleTopPermissions: the workflow starts with `permissions: {}`.
	RuleTopPermissions = "top-level-permissions"
	// RuleLeastPrivilege: write grants only where they are used —
	// contents: write in jobs that run `ci release`, statuses/checks: write
	// in jobs that run `ci test`; no write-all, no other write scope.
	RuleLeastPrivilege = "least-privilege"
	// RuleTimeout: every job has timeout-minutes.
	RuleTimeout = "job-timeout"
	// RuleStageTimeout: a job that runs one named stage has that stage's
	// time limit.
	RuleStageTimeout = "stage-timeout"
	// RulePromotionConcurrency: a job that promotes is in its channel's
	// concurrency group (promote-<channel>; for beta and stable one group
	// per commit, promote-<channel>-${{ github.sha }}, because GitHub
	// replaces a pending job of a group by any newer one), never cancels a
	// running promotion and waits for no environment's reviewers inside the
	// group.
	RulePromotionConcurrency = "promotion-concurrency"
	// RuleStableApproval: promotion to stable runs after a job in the
	// `stable` environment (its required reviewers are the approval), itself
	// or one it needs, and passes the approver.
	RuleStableApproval = "stable-approval"
)

// PromotionGroup is the concurrency group of a job whose highest promotion
// is to channel: dev promotions share one group (a newer commit may replace
// a waiting one); beta and stable have one group per commit, so that no
// other commit's promotion can replace one that waits, approved.
func PromotionGroup(channel string) string {
	if channel == "dev" {
		return "promote-dev"
	}
	return "promote-" + channel + "-${{ github.sha }}"
}

// StageLimits are the stages' time limits in minutes (the Phase 4 plan).
var StageLimits = map[string]int{"unit": 30, "integration": 60, "performance": 120, "security": 45}

// forkEvents are the triggers a fork's pull request can start.
var forkEvents = []string{"pull_request", "pull_request_target", "pull_request_review", "pull_request_review_comment"}

// Violation is one broken rule.
type Violation struct {
	File, Job string
	Line      int
	Rule      string
	Message   string
}

func (v Violation) String() string {
	job := ""
	if v.Job != "" {
		job = " job " + v.Job + ":"
	}
	return fmt.Sprintf("%s:%d:%s %s [%s]", v.File, v.Line, job, v.Message, v.Rule)
}

var (
	shaRef       = regexp.MustCompile(`^[^@\s]+@[0-9a-f]{40}$`)
	versionNote  = regexp.MustCompile(`^#\s*v\d`)
	secretRef    = regexp.MustCompile(`secrets\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_-]*)|\[)`)
	ciTest       = regexp.MustCompile(`go run \./ci test\b`)
	ciRelease    = regexp.MustCompile(`go run \./ci release\b`)
	ciPromote    = regexp.MustCompile(`go run \./ci release promote\b`)
	literalStage = regexp.MustCompile(`--stage[ =]([a-z]+)\b`)
	headRef      = regexp.MustCompile(`github\.event\.pull_request\.head|github\.head_ref|refs/pull/|pull/\$|gh pr checkout`)
	flakeUpdate  = regexp.MustCompile(`\bnix\b.*\bflake (update|lock)\b`)
	ghPR         = regexp.MustCompile(`\bgh pr (create|edit)\b`)
)

// Check parses one workflow file and returns every violation, sorted by line.
func Check(file string, src []byte) ([]Violation, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: not a workflow (no top-level mapping)", file)
	}
	c := &checker{file: file, root: doc.Content[0]}
	c.run()
	sort.SliceStable(c.out, func(i, j int) bool { return c.out[i].Line < c.out[j].Line })
	return c.out, nil
}

type checker struct {
	file string
	root *yaml.Node
	jobs map[string]*yaml.Node
	out  []Violation
}

func (c *checker) add(n *yaml.Node, job, rule, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	c.out = append(c.out, Violation{File: c.file, Job: job, Line: line, Rule: rule, Message: fmt.Sprintf(format, args...)})
}

func (c *checker) run() {
	events := triggers(get(c.root, "on"))
	var fork []string
	for _, e := range forkEvents {
		if slices.Contains(events, e) {
			fork = append(fork, e)
		}
	}

	perms, permsKey := getKV(c.root, "permissions")
	switch {
	case perms == nil:
		c.add(c.root, "", RuleTopPermissions, "no top-level permissions: start with `permissions: {}` and grant per job")
	case perms.Kind != yaml.MappingNode || len(perms.Content) != 0:
		c.add(permsKey, "", RuleTopPermissions, "top-level permissions must be `{}`; grant per job instead")
	}

	jobs := get(c.root, "jobs")
	if jobs == nil || jobs.Kind != yaml.MappingNode {
		c.add(c.root, "", RuleTimeout, "no jobs")
		return
	}
	c.jobs = map[string]*yaml.Node{}
	for i := 0; i+1 < len(jobs.Content); i += 2 {
		c.jobs[jobs.Content[i].Value] = jobs.Content[i+1]
	}
	for i := 0; i+1 < len(jobs.Content); i += 2 {
		c.job(jobs.Content[i].Value, jobs.Content[i], jobs.Content[i+1], events, fork)
	}
}

func (c *checker) job(name string, key, job *yaml.Node, events, fork []string) {
	steps := seq(get(job, "steps"))

	// Pinned references: the job itself (a reusable workflow) and its steps.
	if u, uk := getKV(job, "uses"); u != nil {
		c.pinned(name, uk, u)
	}
	for _, s := range steps {
		if u, uk := getKV(s, "uses"); u != nil {
			c.pinned(name, uk, u)
		}
	}
	runs := runScripts(steps)
	c.timeLimits(name, key, job, runs)
	c.permissions(name, job, runs)
	c.promotion(name, key, job, runs)
	c.pipelineOrder(name, key, job, runs, events)
	c.daggerCLI(name, steps)
	c.resultsOnHead(name, job, steps, fork)
	c.stagingKey(name, job, steps)
	if slices.Contains(events, "pull_request_target") {
		c.prTargetCheckout(name, steps)
	}
	c.noSelfHostedPR(name, job, fork)
	c.forkReach(name, job, steps, fork)
}

// timeLimits: every job has a timeout-minutes, and a job running a stage
// has the stage's limit.
func (c *checker) timeLimits(name string, key, job *yaml.Node, runs []string) {
	timeout := get(job, "timeout-minutes")
	if timeout == nil && get(job, "uses") == nil {
		c.add(key, name, RuleTimeout, "no timeout-minutes")
	}
	if timeout != nil && !strings.Contains(timeout.Value, "${{") {
		for _, r := range runs {
			if !ciTest.MatchString(r) {
				continue
			}
			for _, m := range literalStage.FindAllStringSubmatch(r, -1) {
				if limit, ok := StageLimits[m[1]]; ok && timeout.Value != fmt.Sprint(limit) {
					c.add(timeout, name, RuleStageTimeout, "stage %s has a %d-minute limit, the job %s", m[1], limit, timeout.Value)
				}
			}
		}
	}
}

// prTargetCheckout: pull_request_target must not run the pull request's code.
func (c *checker) prTargetCheckout(name string, steps []*yaml.Node) {
	for _, s := range steps {
		u := get(s, "uses")
		if u != nil && strings.HasPrefix(u.Value, "actions/checkout@") {
			for _, k := range []string{"ref", "repository"} {
				if v := get(get(s, "with"), k); v != nil && headRef.MatchString(v.Value) {
					c.add(v, name, RulePRTargetCheckout, "pull_request_target checks out the pull request's head (%s: %s)", k, v.Value)
				}
			}
		}
		if r := get(s, "run"); r != nil && headRef.MatchString(r.Value) {
			c.add(r, name, RulePRTargetCheckout, "pull_request_target fetches the pull request's head in a run step")
		}
	}
}

// noSelfHostedPR: pull requests, from forks and from branches alike, never
// reach a self-hosted runner.
func (c *checker) noSelfHostedPR(name string, job *yaml.Node, fork []string) {
	for _, ev := range fork {
		reported := false
		for _, ctx := range []Context{ForkPullRequest(ev), SameRepoPullRequest(ev)} {
			if reported {
				break
			}
			cond := get(job, "if")
			if t, err := EvalCondition(scalar(cond), ctx); err != nil || t == False {
				continue
			}
			if lbl, self := selfHostedFor(get(job, "runs-on"), ctx); self {
				c.add(get(job, "runs-on"), name, RulePRSelfHosted,
					"runs on %s and can run for a %s: self-hosted jobs must not be triggered by pull requests (use push, merge_group, workflow_dispatch, or `if: github.event_name != '%s'`)", lbl, ev, ev)
				reported = true
			}
		}
	}
}

// forkReach: what a fork's pull request can reach (environments, secrets).
func (c *checker) forkReach(name string, job *yaml.Node, steps []*yaml.Node, fork []string) {
	for _, ev := range fork {
		cond := get(job, "if")
		t, err := EvalCondition(scalar(cond), ForkPullRequest(ev))
		if err != nil {
			c.add(cond, name, RuleForkSecrets, "if: %v", err)
			continue
		}
		if t == False {
			continue
		}
		if env := get(job, "environment"); env != nil {
			c.add(env, name, RuleForkSecrets, "uses an environment and can run for a fork's %s", ev)
		}
		if s := get(job, "secrets"); s != nil {
			c.add(s, name, RuleForkSecrets, "passes secrets and can run for a fork's %s", ev)
		}
		for _, part := range []string{"env", "with", "container", "services", "runs-on", "strategy"} {
			c.secrets(name, get(job, part), ev)
		}
		for _, s := range steps {
			sc := get(s, "if")
			st, err := EvalCondition(scalar(sc), ForkPullRequest(ev))
			if err != nil {
				c.add(sc, name, RuleForkSecrets, "step if: %v", err)
				continue
			}
			if st != False {
				c.secrets(name, s, ev)
			}
		}
	}
}

func (c *checker) pinned(job string, key, u *yaml.Node) {
	ref := u.Value
	if strings.HasPrefix(ref, "./") || strings.HasPrefix(ref, "docker://") {
		return
	}
	if !shaRef.MatchString(ref) {
		c.add(u, job, RulePinned, "%s is not pinned by a full commit SHA", ref)
		return
	}
	if !versionNote.MatchString(strings.TrimSpace(u.LineComment)) && !versionNote.MatchString(strings.TrimSpace(key.LineComment)) {
		c.add(u, job, RuleVersionComment, "%s has no `# vX.Y.Z` comment naming its release", ref)
	}
}

func (c *checker) secrets(job string, n *yaml.Node, event string) {
	walk(n, func(s *yaml.Node) {
		for _, m := range secretRef.FindAllStringSubmatch(s.Value, -1) {
			if strings.EqualFold(m[1], "GITHUB_TOKEN") {
				continue
			}
			c.add(s, job, RuleForkSecrets, "reads secrets (%s) and can run for a fork's %s: guard it with an `if:` that excludes forks", strings.TrimSpace(m[0]), event)
		}
	})
}

func (c *checker) permissions(name string, job *yaml.Node, runs []string) {
	p := get(job, "permissions")
	if p == nil {
		return
	}
	if p.Kind == yaml.ScalarNode {
		if p.Value == "write-all" {
			c.add(p, name, RuleLeastPrivilege, "permissions: write-all")
		}
		return
	}
	anyRun := func(re *regexp.Regexp) bool { return slices.ContainsFunc(runs, re.MatchString) }
	for i := 0; i+1 < len(p.Content); i += 2 {
		scope, level := p.Content[i].Value, p.Content[i+1].Value
		if level != "write" {
			continue
		}
		switch scope {
		case "contents":
			if !anyRun(ciRelease) && !(anyRun(flakeUpdate) && anyRun(ghPR)) {
				c.add(p.Content[i], name, RuleLeastPrivilege, "contents: write in a job that makes no tag, release or flake.lock pull request")
			}
		case "pull-requests":
			if !anyRun(flakeUpdate) || !anyRun(ghPR) {
				c.add(p.Content[i], name, RuleLeastPrivilege, "pull-requests: write in a job that opens no flake.lock pull request")
			}
		case "statuses", "checks":
			if !anyRun(ciTest) {
				c.add(p.Content[i], name, RuleLeastPrivilege, "%s: write in a job that records no stage result", scope)
			}
		default:
			c.add(p.Content[i], name, RuleLeastPrivilege, "%s: write is not needed by any pipeline command", scope)
		}
	}
}

func (c *checker) promotion(name string, key, job *yaml.Node, runs []string) {
	promotes, stable := false, false
	for _, r := range runs {
		for _, line := range strings.Split(r, "\n") {
			if !ciPromote.MatchString(line) {
				continue
			}
			promotes = true
			if strings.Contains(line, "--to stable") || strings.Contains(line, "--to=stable") {
				stable = true
				if !strings.Contains(line, "--approved-by") {
					c.add(key, name, RuleStableApproval, "promotion to stable without --approved-by")
				}
			}
		}
	}
	if !promotes {
		return
	}
	conc := get(job, "concurrency")
	group := scalar(conc)
	if conc != nil && conc.Kind == yaml.MappingNode {
		group = scalar(get(conc, "group"))
		if cancel := get(conc, "cancel-in-progress"); cancel != nil && cancel.Value != "false" {
			c.add(cancel, name, RulePromotionConcurrency, "a promotion must never be cancelled half way (cancel-in-progress: %s)", cancel.Value)
		}
	}
	channel := highestChannel(runs)
	if want := PromotionGroup(channel); group != want {
		c.add(key, name, RulePromotionConcurrency, "promotes to %s without `concurrency: {group: %s}` (found %q)", channel, want, group)
	}
	if env := get(job, "environment"); env != nil {
		c.add(env, name, RulePromotionConcurrency, "a promoting job waits for no environment inside its concurrency group: approve in a job it needs")
	}
	c.promotionNeeds(name, key, job, channel)
	if stable && !c.approvedBefore(name, map[string]bool{}) {
		c.add(key, name, RuleStableApproval, "promotes to stable with no job in the `stable` environment before it (its required reviewers are the approval)")
	}
}

// approvedBefore reports whether job, or a job it needs (transitively), runs
// in the `stable` environment.
func (c *checker) approvedBefore(job string, seen map[string]bool) bool {
	if seen[job] {
		return false
	}
	seen[job] = true
	n := c.jobs[job]
	env := get(n, "environment")
	envName := scalar(env)
	if env != nil && env.Kind == yaml.MappingNode {
		envName = scalar(get(env, "name"))
	}
	if envName == "stable" {
		return true
	}
	needs := get(n, "needs")
	if s := scalar(needs); s != "" {
		return c.approvedBefore(s, seen)
	}
	for _, d := range seq(needs) {
		if c.approvedBefore(d.Value, seen) {
			return true
		}
	}
	return false
}

// triggers lists the event names of an `on:` node.
func triggers(on *yaml.Node) []string {
	if on == nil {
		return nil
	}
	switch on.Kind {
	case yaml.ScalarNode:
		return []string{on.Value}
	case yaml.SequenceNode:
		var out []string
		for _, n := range on.Content {
			out = append(out, n.Value)
		}
		return out
	case yaml.MappingNode:
		var out []string
		for i := 0; i < len(on.Content); i += 2 {
			out = append(out, on.Content[i].Value)
		}
		return out
	}
	return nil
}

// selfHosted reports whether runs-on may name a self-hosted runner: the
// label self-hosted, a runner group, or an expression decided at run time.
func selfHosted(n *yaml.Node) (string, bool) {
	if n == nil {
		return "", false
	}
	var self string
	walk(n, func(s *yaml.Node) {
		switch {
		case self != "":
		case strings.EqualFold(s.Value, "self-hosted"):
			self = "self-hosted"
		case strings.Contains(s.Value, "${{"):
			self = fmt.Sprintf("%q (decided at run time)", s.Value)
		}
	})
	if self == "" && n.Kind == yaml.MappingNode && get(n, "group") != nil {
		self = "a runner group"
	}
	return self, self != ""
}

func runScripts(steps []*yaml.Node) []string {
	var out []string
	for _, s := range steps {
		if r := get(s, "run"); r != nil {
			out = append(out, r.Value)
		}
	}
	return out
}

// get returns the value of key in mapping n, or nil.
func get(n *yaml.Node, key string) *yaml.Node {
	v, _ := getKV(n, key)
	return v
}

func getKV(n *yaml.Node, key string) (value, keyNode *yaml.Node) {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1], n.Content[i]
		}
	}
	return nil, nil
}

func seq(n *yaml.Node) []*yaml.Node {
	if n == nil || n.Kind != yaml.SequenceNode {
		return nil
	}
	return n.Content
}

func scalar(n *yaml.Node) string {
	if n == nil || n.Kind != yaml.ScalarNode {
		return ""
	}
	return n.Value
}

// walk calls f on every scalar under n.
func walk(n *yaml.Node, f func(*yaml.Node)) {
	if n == nil {
		return
	}
	if n.Kind == yaml.ScalarNode {
		f(n)
		return
	}
	for _, c := range n.Content {
		walk(c, f)
	}
}
