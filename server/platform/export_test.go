package platform

import (
	"context"
	"net"
)

// SetDial makes clients built from o connect to the addresses the guard
// admits through dial, so that a test can see an address that does not
// exist here be admitted, and still reach a server.
func SetDial(o *HTTPOptions, dial func(ctx context.Context, network, addr string) (net.Conn, error)) {
	o.dial = dial
}
