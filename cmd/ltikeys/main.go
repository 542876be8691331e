// Command ltikeys runs the ltikeys key service and its maintenance commands.
//
//	ltikeys serve     run the gRPC API and the public JWKS
//	ltikeys rewrap    re-seal every private key under the primary master key
//	ltikeys migrate   show or apply the database schema's migrations
//
// The flags of these commands, and those of the client commands that say
// how to reach the server, can also be set through an LTIKEYS_ environment
// variable (--grpc-addr is LTIKEYS_GRPC_ADDR); a flag given on the command
// line wins. The client commands' flags that say what to do are read from
// the command line only.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCommand().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ltikeys:", err)
		var exit exitError
		if errors.As(err, &exit) {
			os.Exit(exit.code)
		}
		os.Exit(1)
	}
}

// exitError carries a specific exit status out of a command.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }
