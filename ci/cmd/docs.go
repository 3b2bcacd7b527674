package cmd

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/ipex-flake/ipex-flake/internal/clierr"
)

func init() { register(newDocsCmd) }

// DocsOptions are the flags of `ci docs`.
type DocsOptions struct {
	IO  *IO
	Out string
	// Root is the command tree to document (the tree `ci docs` belongs to).
	Root *cobra.Command
}

func newDocsCmd(io *IO) *cobra.Command { return newDocsCmdWith(io, runDocs) }

func newDocsCmdWith(io *IO, runF func(context.Context, *DocsOptions) error) *cobra.Command {
	o := &DocsOptions{IO: io}
	c := &cobra.Command{
		Use:   "docs",
		Short: "Write the command-line reference (Markdown) into a directory",
		Long: `Write the Markdown reference of every ci command into --out, one page per
command (ci.md, ci_build.md, …), generated from the commands' own help. The
output is deterministic: no date footer, commands and flags sorted. Pages in
--out that no command produces any more (ci*.md) are removed.

The committed reference lives in docs/cli; a test fails when it differs from
what the commands say. Refresh it with:

  go run ./ci docs --out docs/cli`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			o.Root = c.Root()
			return runF(c.Context(), o)
		},
	}
	c.Flags().StringVar(&o.Out, "out", "docs/cli", "directory to write the Markdown pages into (created if missing)")
	return c
}

func runDocs(_ context.Context, o *DocsOptions) error {
	if o.Out == "" {
		return clierr.Usagef("--out is empty: name a directory, e.g. --out docs/cli")
	}
	if fi, err := os.Stat(o.Out); err == nil && !fi.IsDir() {
		return clierr.Usagef("--out %s is a file: name a directory, e.g. --out docs/cli", o.Out)
	}
	pages, err := GenerateCLIDocs(o.Root)
	if err != nil {
		return err
	}
	if err := WriteCLIDocs(o.Out, pages); err != nil {
		return err
	}
	fmt.Fprintf(o.IO.Out, "wrote %d pages to %s\n", len(pages), o.Out)
	return nil
}

// GenerateCLIDocs renders the Markdown reference of root and every available
// subcommand, keyed by file name (ci.md, ci_build.md, …). The default
// completion command is included as `ci` itself would show it; no page has a
// date footer.
func GenerateCLIDocs(root *cobra.Command) (map[string][]byte, error) {
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	pages := map[string][]byte{}
	var walk func(c *cobra.Command) error
	walk = func(c *cobra.Command) error {
		if !c.IsAvailableCommand() && c != root || c.IsAdditionalHelpTopicCommand() {
			return nil
		}
		c.DisableAutoGenTag = true
		for _, sub := range c.Commands() {
			if err := walk(sub); err != nil {
				return err
			}
		}
		var b strings.Builder
		if err := doc.GenMarkdown(c, &b); err != nil {
			return fmt.Errorf("generate docs of %s: %w", c.CommandPath(), err)
		}
		name := strings.ReplaceAll(c.CommandPath(), " ", "_") + ".md"
		pages[name] = []byte(portable(b.String()))
		return nil
	}
	if err := walk(root); err != nil {
		return nil, err
	}
	return pages, nil
}

// portable replaces this user's cache directory, which flag defaults
// mention (the local binary cache), with ~/.cache, so the pages read the
// same whoever generates them.
func portable(page string) string {
	if dir, err := os.UserCacheDir(); err == nil && dir != "" {
		page = strings.ReplaceAll(page, dir+string(filepath.Separator), "~/.cache/")
	}
	return page
}

// WriteCLIDocs writes pages into dir and removes the ci*.md pages there
// that pages does not hold.
func WriteCLIDocs(dir string, pages map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	old, err := filepath.Glob(filepath.Join(dir, "ci*.md"))
	if err != nil {
		return err
	}
	for _, f := range old {
		if _, keep := pages[filepath.Base(f)]; !keep {
			if err := os.Remove(f); err != nil {
				return fmt.Errorf("remove stale page: %w", err)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(pages)) {
		if err := os.WriteFile(filepath.Join(dir, name), pages[name], 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return nil
}
