package platformtest

import (
	"context"
	"net"
	"net/netip"
	"strings"
)

// Resolver answers name lookups from the map, and nothing else: a name
// not in it is not found. Names match in any case, as in DNS. It has the
// method of platform.Resolver.
type Resolver map[string][]netip.Addr

// LookupNetIP returns the addresses of host of the family network asks
// for ("ip", "ip4" or "ip6").
func (r Resolver) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	var out []netip.Addr
	var addrs []netip.Addr
	for name, as := range r {
		if strings.EqualFold(name, host) {
			addrs = append(addrs, as...)
		}
	}
	for _, a := range addrs {
		if network == "ip" || network == "ip4" && a.Is4() || network == "ip6" && a.Is6() {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return out, nil
}
