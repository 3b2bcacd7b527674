// Package docs holds the documentation tests: every relative link in the
// Markdown files resolves (files and GitHub heading anchors), every
// `go run ./ci …` command line in the docs parses against the real command
// tree, every services.*/programs.* option the docs name is declared by a
// module in modules/ (and every option the modules read is one the scan
// found), every systemd unit of the flake the docs name is defined by a
// module, and docs/architecture.md names every Go package.
package docs
