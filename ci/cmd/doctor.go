package cmd

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/google/go-github/v89/github"
	"github.com/spf13/cobra"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
	"github.com/ipex-flake/ipex-flake/internal/githubhttp"
)

func init() { register(newDoctorCmd) }

// DoctorOptions are the flags of `ci doctor`.
type DoctorOptions struct {
	IO *IO
	// Repo is owner/name (default $GITHUB_REPOSITORY).
	Repo string
	// Label marks the self-hosted Intel runners.
	Label string
}

func newDoctorCmd(io *IO) *cobra.Command { return newDoctorCmdWith(io, runDoctor) }

func newDoctorCmdWith(io *IO, runF func(context.Context, *DoctorOptions) error) *cobra.Command {
	o := &DoctorOptions{IO: io}
	c := &cobra.Command{
		Use:   "doctor",
		Short: "Check the GitHub settings the self-hosted runners' trust boundary relies on",
		Long: `Check, through the GitHub API, the repository and runner settings that a
workflow file cannot enforce (docs/ci.md, "Trust"):

  fork-pr-approval      workflows from outside contributors need approval
  workflow-permissions  the default GITHUB_TOKEN can only read, and cannot approve pull requests
  runner-group          the intel-gpu runners are in a group limited to this repository
                        and to its workflows at refs/heads/main and refs/tags/*
  ephemeral-runners     every runner labelled intel-gpu is ephemeral

Each prints ok, wrong (with the fix) or unknown (the API did not tell: the
token lacks the scope, or the setting does not exist for this owner).
Needs GITHUB_TOKEN (or GH_TOKEN) with admin read access to the repository
(and organization self-hosted runners for the runner group); GITHUB_API_URL
for GitHub Enterprise.

Exit codes: 0 nothing wrong (unknowns included), 1 something is wrong,
2 no repository or token.`,
		Example: `  GITHUB_TOKEN=$(gh auth token) go run ./ci doctor --repo ipex-flake/ipex-flake`,
		Args:    cobra.NoArgs,
		RunE:    func(c *cobra.Command, _ []string) error { return runF(c.Context(), o) },
	}
	c.Flags().StringVar(&o.Repo, "repo", "", "GitHub repository owner/name (default $GITHUB_REPOSITORY)")
	c.Flags().StringVar(&o.Label, "label", "intel-gpu", "label of the self-hosted runners to check")
	return c
}

// Verdicts of a doctor check.
const (
	DoctorOK      = "ok"
	DoctorWrong   = "wrong"
	DoctorUnknown = "unknown"
)

// DoctorFinding is one checked setting.
type DoctorFinding struct {
	Check, Verdict, Detail, Fix string
}

func runDoctor(ctx context.Context, o *DoctorOptions) error {
	repo := o.Repo
	if repo == "" {
		repo = o.IO.Getenv("GITHUB_REPOSITORY")
	}
	owner, name, ok := strings.Cut(repo, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return clierr.Usagef("no repository: pass --repo owner/name or set GITHUB_REPOSITORY")
	}
	token := o.IO.Getenv("GITHUB_TOKEN")
	if token == "" {
		token = o.IO.Getenv("GH_TOKEN")
	}
	if token == "" {
		return clierr.Usagef("no token: set GITHUB_TOKEN (or GH_TOKEN) to a token with admin read access to %s", repo)
	}
	client, err := githubhttp.NewGitHub(githubhttp.Config{Token: token, APIURL: o.IO.Getenv("GITHUB_API_URL")})
	if err != nil {
		return clierr.Usagef("%v", err)
	}
	findings := Doctor(ctx, client, owner, name, o.Label)
	wrong := 0
	for _, f := range findings {
		fmt.Fprintf(o.IO.Out, "%-8s %-21s %s\n", f.Verdict, f.Check, redactToken(f.Detail, token))
		if f.Fix != "" && f.Verdict != DoctorOK {
			fmt.Fprintf(o.IO.Out, "         %-21s fix: %s\n", "", f.Fix)
		}
		if f.Verdict == DoctorWrong {
			wrong++
		}
	}
	if wrong > 0 {
		return clierr.Failedf("%d of %d settings are wrong for %s", wrong, len(findings), repo)
	}
	return nil
}

func redactToken(s, token string) string {
	if len(token) >= 4 {
		return strings.ReplaceAll(s, token, "<token>")
	}
	return s
}

// Doctor checks the settings of owner/repo that the trust boundary of the
// self-hosted runners labelled label relies on.
func Doctor(ctx context.Context, c *github.Client, owner, repo, label string) []DoctorFinding {
	full := owner + "/" + repo
	settings := "https://github.com/" + full + "/settings/actions"
	var out []DoctorFinding

	// Fork pull request approval.
	f := DoctorFinding{Check: "fork-pr-approval",
		Fix: settings + " → Fork pull request workflows from outside collaborators → Require approval for all external contributors"}
	if p, _, err := c.Actions.GetForkPRContributorApprovalPermissions(ctx, owner, repo); err != nil {
		f.Verdict, f.Detail = DoctorUnknown, apiWhy(err)
	} else if p.ApprovalPolicy == "all_external_contributors" {
		f.Verdict, f.Detail = DoctorOK, "workflows of all outside contributors need approval"
	} else {
		f.Verdict, f.Detail = DoctorWrong, fmt.Sprintf("approval policy is %q: some outside contributors' workflows run without approval", p.ApprovalPolicy)
	}
	out = append(out, f)

	// Default workflow permissions.
	f = DoctorFinding{Check: "workflow-permissions",
		Fix: settings + " → Workflow permissions → Read repository contents and packages permissions; untick Allow GitHub Actions to create and approve pull requests"}
	if p, _, err := c.Repositories.GetDefaultWorkflowPermissions(ctx, owner, repo); err != nil {
		f.Verdict, f.Detail = DoctorUnknown, apiWhy(err)
	} else {
		switch {
		case p.GetDefaultWorkflowPermissions() != "read":
			f.Verdict, f.Detail = DoctorWrong, fmt.Sprintf("default GITHUB_TOKEN permissions are %q: every job without a permissions block can write", p.GetDefaultWorkflowPermissions())
		case p.GetCanApprovePullRequestReviews():
			f.Verdict, f.Detail = DoctorWrong, "GitHub Actions may approve pull requests"
		default:
			f.Verdict, f.Detail = DoctorOK, "the default GITHUB_TOKEN reads only and cannot approve pull requests"
		}
	}
	out = append(out, f)

	// The runners labelled label: where they are and whether ephemeral.
	runners, orgRunners, why := labelledRunners(ctx, c, owner, repo, label)
	out = append(out, runnerGroupFinding(ctx, c, owner, repo, label, len(runners)-len(orgRunners), orgRunners, why))
	f = DoctorFinding{Check: "ephemeral-runners",
		Fix: "register the runners with --ephemeral (`ephemeral = true` in services.github-runners, docs/ci.md)"}
	switch {
	case len(runners) == 0 && why != "":
		f.Verdict, f.Detail = DoctorUnknown, why
	case len(runners) == 0:
		f.Verdict, f.Detail = DoctorUnknown, "no runner labelled "+label+" is registered for "+full
	default:
		var persistent, unknown []string
		for _, r := range runners {
			switch {
			case r.Ephemeral == nil:
				unknown = append(unknown, r.GetName())
			case !r.GetEphemeral():
				persistent = append(persistent, r.GetName())
			}
		}
		switch {
		case len(persistent) > 0:
			f.Verdict, f.Detail = DoctorWrong, "not ephemeral: "+strings.Join(persistent, ", ")+" (a job's leftovers reach the next job and its tokens)"
		case len(unknown) > 0:
			f.Verdict, f.Detail = DoctorUnknown, "the API does not say whether these are ephemeral: "+strings.Join(unknown, ", ")
		default:
			f.Verdict, f.Detail = DoctorOK, fmt.Sprintf("%d runners labelled %s, all ephemeral", len(runners), label)
		}
	}
	out = append(out, f)
	return out
}

// labelledRunners returns the runners with label: the repository's own and
// the organization's (orgRunners). why says what could not be read.
func labelledRunners(ctx context.Context, c *github.Client, owner, repo, label string) (all, org []*github.Runner, why string) {
	has := func(r *github.Runner) bool {
		return slices.ContainsFunc(r.Labels, func(l *github.RunnerLabels) bool { return strings.EqualFold(l.GetName(), label) })
	}
	var whys []string
	opts := &github.ListRunnersOptions{ListOptions: github.ListOptions{PerPage: 100}}
	for page := 0; page < 50; page++ {
		rs, resp, err := c.Actions.ListRunners(ctx, owner, repo, opts)
		if err != nil {
			whys = append(whys, "repository runners: "+apiWhy(err))
			break
		}
		for _, r := range rs.Runners {
			if has(r) {
				all = append(all, r)
			}
		}
		if resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	opts = &github.ListRunnersOptions{ListOptions: github.ListOptions{PerPage: 100}}
	for page := 0; page < 50; page++ {
		rs, resp, err := c.Actions.ListOrganizationRunners(ctx, owner, opts)
		if err != nil {
			whys = append(whys, "organization runners: "+apiWhy(err))
			break
		}
		for _, r := range rs.Runners {
			if has(r) {
				all, org = append(all, r), append(org, r)
			}
		}
		if resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	return all, org, strings.Join(whys, "; ")
}

// runnerGroupFinding checks the groups of the organization's runners with
// the label: not the default group, visible to this repository only, and
// restricted to its workflows at refs/heads/main and refs/tags/*.
func runnerGroupFinding(ctx context.Context, c *github.Client, owner, repo, label string, repoRunners int, orgRunners []*github.Runner, why string) DoctorFinding {
	full := owner + "/" + repo
	f := DoctorFinding{Check: "runner-group",
		Fix: fmt.Sprintf("https://github.com/organizations/%s/settings/actions/runner-groups → a group for the %s runners: Selected repositories = %s only; Selected workflows = %s/.github/workflows/<file>.yml@refs/heads/main and @refs/tags/*", owner, label, full, full)}
	if repoRunners > 0 && why == "" {
		f.Verdict = DoctorWrong
		f.Detail = fmt.Sprintf("%d runners labelled %s are registered to the repository itself: no runner group restricts which workflows and refs use them", repoRunners, label)
		return f
	}
	if len(orgRunners) == 0 {
		f.Verdict = DoctorUnknown
		f.Detail = "no organization runner labelled " + label + " found: runner groups exist only for organization runners"
		if why != "" {
			f.Detail += " (" + why + ")"
		}
		return f
	}
	groups := map[int64]bool{}
	for _, r := range orgRunners {
		groups[r.GetRunnerGroupID()] = true
	}
	var problems []string
	for _, id := range slices.Sorted(maps.Keys(groups)) {
		g, _, err := c.Actions.GetOrganizationRunnerGroup(ctx, owner, id)
		if err != nil {
			f.Verdict, f.Detail = DoctorUnknown, fmt.Sprintf("runner group %d: %s", id, apiWhy(err))
			return f
		}
		name := fmt.Sprintf("group %q", g.GetName())
		if g.GetDefault() {
			problems = append(problems, name+" is the default group, which every repository of the organization can use")
		}
		if g.GetVisibility() != "selected" {
			problems = append(problems, fmt.Sprintf("%s is visible to %s repositories, not to %s alone", name, g.GetVisibility(), full))
		} else {
			repos, _, err := c.Actions.ListRepositoryAccessRunnerGroup(ctx, owner, id, &github.ListOptions{PerPage: 100})
			if err != nil {
				f.Verdict, f.Detail = DoctorUnknown, fmt.Sprintf("repositories of %s: %s", name, apiWhy(err))
				return f
			}
			for _, r := range repos.Repositories {
				if !strings.EqualFold(r.GetFullName(), full) {
					problems = append(problems, fmt.Sprintf("%s also serves %s", name, r.GetFullName()))
				}
			}
		}
		if !g.GetRestrictedToWorkflows() {
			problems = append(problems, name+" is not restricted to selected workflows")
		} else {
			for _, w := range g.SelectedWorkflows {
				if !allowedWorkflowRef(w, full) {
					problems = append(problems, fmt.Sprintf("%s allows %s (only %s workflows at refs/heads/main or refs/tags/*)", name, w, full))
				}
			}
		}
	}
	if len(problems) > 0 {
		f.Verdict, f.Detail = DoctorWrong, strings.Join(problems, "; ")
		return f
	}
	f.Verdict, f.Detail = DoctorOK, fmt.Sprintf("the %s runners' groups serve %s alone, its workflows at refs/heads/main and refs/tags/*", label, full)
	return f
}

// allowedWorkflowRef accepts owner/repo/.github/workflows/X@refs/heads/main
// and …@refs/tags/*.
func allowedWorkflowRef(w, full string) bool {
	path, ref, ok := strings.Cut(w, "@")
	if !ok || !strings.HasPrefix(strings.ToLower(path), strings.ToLower(full)+"/.github/workflows/") {
		return false
	}
	return ref == "refs/heads/main" || ref == "refs/tags/*"
}

// apiWhy says why an API answer is missing, with what would fix it.
func apiWhy(err error) string {
	var ge *github.ErrorResponse
	if errors.As(err, &ge) && ge.Response != nil {
		switch ge.Response.StatusCode {
		case http.StatusForbidden, http.StatusUnauthorized:
			return fmt.Sprintf("the token may not read this (%d %s): use a token with admin read access", ge.Response.StatusCode, ge.Message)
		case http.StatusNotFound:
			return "not found (404): the setting does not exist for this owner, or the token cannot see it"
		}
		return fmt.Sprintf("%d %s", ge.Response.StatusCode, ge.Message)
	}
	return err.Error()
}
