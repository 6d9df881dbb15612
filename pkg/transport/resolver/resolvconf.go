package resolver

import (
	"bufio"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
)

// ServersFromResolvConf returns the nameserver addresses in a resolv.conf
// file (callers pass "/etc/resolv.conf" by default), as "ip:53" strings for
// Config.Servers. Other settings (search, options) are ignored: mail
// routing uses fully qualified names and the Config's own timeouts.
//
// Unlike the C library it refuses a nameserver line it cannot parse, and a
// file with none, because silently falling back to some other server would
// route mail by a DNS view the operator did not choose.
func ServersFromResolvConf(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("resolver: %w", err)
	}
	defer f.Close()

	var servers []string
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if i := strings.IndexAny(text, "#;"); i >= 0 {
			text = text[:i]
		}
		fields := strings.Fields(text)
		if len(fields) == 0 || fields[0] != "nameserver" {
			continue
		}
		if len(fields) < 2 {
			return nil, fmt.Errorf("resolver: %s:%d: nameserver without an address", path, line)
		}
		addr, err := netip.ParseAddr(fields[1])
		if err != nil {
			return nil, fmt.Errorf("resolver: %s:%d: nameserver %q is not an ip address", path, line, fields[1])
		}
		servers = append(servers, netip.AddrPortFrom(addr, 53).String())
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("resolver: read %s: %w", path, err)
	}
	if len(servers) == 0 {
		return nil, errors.New("resolver: no nameserver in " + path)
	}
	return servers, nil
}
