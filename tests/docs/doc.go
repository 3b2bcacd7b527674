// Package docs holds the documentation tests: every relative link in the
// Markdown files resolves (files and GitHub heading anchors), every
// `go run ./ci …` command line in the docs parses against the real command
// tree, and every services.*/programs.* option the docs name is declared by
// a module in modules/.
package docs
