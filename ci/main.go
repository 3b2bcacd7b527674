// Command ci is the ipex-flake CI/release pipeline: `go run ./ci --help`.
package main

import (
	"os"

	"github.com/ipex-flake/ipex-flake/ci/cmd"
)

func main() { os.Exit(cmd.Main(os.Args[1:])) }
