package connector

import (
	"net/netip"
	"strings"
)

// SmartHost is one next hop of a smart-host connector: an IP literal or a
// host name (resolved at delivery time), never both. The port comes from the
// connector, never from the entry.
type SmartHost struct {
	Host string
	IP   netip.Addr
}

// IsIP reports whether the smart host is an IP literal.
func (h SmartHost) IsIP() bool { return h.IP.IsValid() }

// String prints IP literals bracketed ("[192.168.3.2]") as Exchange does, and
// host names as they are.
func (h SmartHost) String() string {
	if h.IP.IsValid() {
		return "[" + h.IP.String() + "]"
	}
	return h.Host
}

func (h SmartHost) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

func (h *SmartHost) UnmarshalText(b []byte) error {
	v, err := ParseSmartHost(string(b))
	if err != nil {
		return err
	}
	*h = v
	return nil
}

// ParseSmartHost parses one entry: "192.168.3.2", "[192.168.3.2]", "[::1]",
// "::1" or "relay.contoso.com".
func ParseSmartHost(s string) (SmartHost, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return SmartHost{}, ruleErr("InvalidSmartHost", "smart host is empty")
	}
	if s == "--" {
		return SmartHost{}, ruleErr("InvalidSmartHost", "the \"--\" smart host (EdgeSync's subscribed servers) is not supported")
	}
	body, bracketed := s, false
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return SmartHost{}, ruleErr("InvalidSmartHost", "missing closing bracket")
		}
		if end != len(s)-1 {
			return SmartHost{}, portErr(s)
		}
		body, bracketed = s[1:end], true
	}
	if ip, err := netip.ParseAddr(body); err == nil {
		if ip.Zone() != "" {
			return SmartHost{}, ruleErr("InvalidSmartHost", "an IPv6 zone is not allowed")
		}
		if ip.IsUnspecified() {
			return SmartHost{}, ruleErr("InvalidSmartHost", "the IP address %s isn't valid as a routing host", ip)
		}
		if ip.IsMulticast() || ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
			return SmartHost{}, ruleErr("InvalidSmartHost", "a multicast or broadcast address isn't valid as a routing host")
		}
		return SmartHost{IP: ip.Unmap()}, nil
	}
	if bracketed {
		return SmartHost{}, ruleErr("InvalidSmartHost", "brackets are only for IP addresses")
	}
	if strings.Contains(body, ":") {
		return SmartHost{}, portErr(s)
	}
	h, err := NormalizeDomain(body)
	if err != nil {
		return SmartHost{}, ruleErr("InvalidSmartHost", "the routing host name isn't valid: %s", err.Error())
	}
	return SmartHost{Host: h}, nil
}

func portErr(s string) error {
	return ruleErr("InvalidSmartHost", "host:port is not accepted; the connector's --port applies to every smart host")
}

// ParseSmartHostList parses entries separated by ',' or ';'. Empty entries are
// skipped; every bad entry is reported.
func ParseSmartHostList(s string) ([]SmartHost, error) {
	var out []SmartHost
	var ps problems
	for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' }) {
		if strings.TrimSpace(part) == "" {
			continue
		}
		h, err := ParseSmartHost(part)
		if err != nil {
			ps.addErr("SmartHosts", strings.TrimSpace(part), err)
			continue
		}
		out = append(out, h)
	}
	return out, ps.err()
}

// dedupSmartHosts drops duplicates and keeps the order of first appearance.
func dedupSmartHosts(in []SmartHost) []SmartHost {
	out := make([]SmartHost, 0, len(in))
	seen := make(map[SmartHost]bool, len(in))
	for _, h := range in {
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	return out
}

// SmartHostsString is the comma-joined list, Exchange's SmartHostsString.
func SmartHostsString(hosts []SmartHost) string {
	parts := make([]string, len(hosts))
	for i, h := range hosts {
		parts[i] = h.String()
	}
	return strings.Join(parts, ",")
}
