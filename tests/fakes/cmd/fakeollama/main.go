// Command fakeollama serves the fake Ollama API (tests/fakes) as a
// standalone server, configured as `ollama serve` is: it listens on
// OLLAMA_HOST (default 127.0.0.1:11434) and answers OLLAMA_NUM_PARALLEL
// requests at once with OLLAMA_MAX_QUEUE waiting. It prints the base URL
// it serves on, then serves until interrupted.
//
//	fakeollama [serve] [--token-delay 10ms] [--empty-answers] [--no-models]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/ipex-flake/ipex-flake/tests/fakes"
	"github.com/ipex-flake/ipex-flake/tests/integration/apiclient"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, nil)
	stop()
	os.Exit(code)
}

// run parses args and the environment, serves until ctx ends and returns
// the exit code. ready (may be nil) receives the base URL once listening.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, ready chan<- string) int {
	fs := flag.NewFlagSet("fakeollama", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opts fakes.OllamaOptions
	fs.DurationVar(&opts.TokenDelay, "token-delay", 0, "pause before each streamed chunk")
	fs.BoolVar(&opts.EmptyAnswers, "empty-answers", false, "answer without text, as a model with random weights does")
	fs.BoolVar(&opts.NoModels, "no-models", false, "serve with no models")
	if len(args) > 0 && args[0] == "serve" {
		args = args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	for name, dst := range map[string]*int{"OLLAMA_NUM_PARALLEL": &opts.Parallel, "OLLAMA_MAX_QUEUE": &opts.MaxQueue} {
		if v := getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				fmt.Fprintf(stderr, "fakeollama: %s=%q is not a number of requests\n", name, v)
				return 2
			}
			*dst = n
		}
	}
	u, err := url.Parse(apiclient.NormalizeOllamaHost(getenv("OLLAMA_HOST")))
	if err != nil || u.Scheme != "http" {
		fmt.Fprintf(stderr, "fakeollama: OLLAMA_HOST=%q: give host:port to listen on (plain http)\n", getenv("OLLAMA_HOST"))
		return 2
	}
	return fakes.Serve(ctx, "fakeollama", u.Host, fakes.NewOllamaAPI(opts), stdout, stderr, ready)
}
