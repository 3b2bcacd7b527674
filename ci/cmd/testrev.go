package cmd

import (
	"encoding/json"
	"os"
	"strings"
)

// commitUnderTest is the commit GitHub Actions is testing. On pull request
// events GITHUB_SHA is the merge commit GitHub made, which nobody sees on the
// pull request; the results belong on the pull request's head commit, read
// from the event payload. Elsewhere it is GITHUB_SHA; "" outside Actions.
func commitUnderTest(getenv func(string) string) string {
	if strings.HasPrefix(getenv("GITHUB_EVENT_NAME"), "pull_request") {
		if sha := pullRequestHead(getenv("GITHUB_EVENT_PATH")); sha != "" {
			return sha
		}
	}
	return getenv("GITHUB_SHA")
}

// pullRequestHead reads pull_request.head.sha from an event payload file.
func pullRequestHead(path string) string {
	if path == "" {
		return ""
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var ev struct {
		PullRequest struct {
			Head struct {
				SHA string `json:"sha"`
			} `json:"head"`
		} `json:"pull_request"`
	}
	if json.Unmarshal(data, &ev) != nil {
		return ""
	}
	return ev.PullRequest.Head.SHA
}
