package fakes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Serve listens on addr, prints the base URL to stdout (and sends it to
// ready when not nil), serves h until ctx ends and returns the exit code
// of a command named name.
func Serve(ctx context.Context, name, addr string, h http.Handler, stdout, stderr io.Writer, ready chan<- string) int {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	base := "http://" + ln.Addr().String()
	fmt.Fprintln(stdout, base)
	if ready != nil {
		ready <- base
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	return 0
}
