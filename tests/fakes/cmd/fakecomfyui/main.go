// Command fakecomfyui serves the fake ComfyUI API (tests/fakes) as a
// standalone server, configured as ComfyUI's main.py is: --listen ADDRESS
// (default 127.0.0.1) and --port PORT (default 8188, 0 for any free port).
// It prints the base URL it serves on, then serves until interrupted.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/ipex-flake/ipex-flake/tests/fakes"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, nil)
	stop()
	os.Exit(code)
}

// run parses args, serves until ctx ends and returns the exit code. ready
// (may be nil) receives the base URL once listening.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, ready chan<- string) int {
	fs := flag.NewFlagSet("fakecomfyui", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1", "address to listen on")
	port := fs.Int("port", 8188, "port to listen on (0: any free port)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *port < 0 || *port > 65535 {
		fmt.Fprintf(stderr, "fakecomfyui: --port %d: give a port from 0 to 65535\n", *port)
		return 2
	}
	return fakes.Serve(ctx, "fakecomfyui", net.JoinHostPort(*listen, strconv.Itoa(*port)), fakes.NewComfyUIAPI(), stdout, stderr, ready)
}
