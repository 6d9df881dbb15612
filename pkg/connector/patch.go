package connector

import (
	"fmt"
	"net/netip"
	"strings"
)

// Opt is an optional value in a Patch: Set says whether the admin gave it.
type Opt[T any] struct {
	Set bool
	V   T
}

// Some returns a set Opt.
func Some[T any](v T) Opt[T] { return Opt[T]{Set: true, V: v} }

// ListPatch changes a multi-valued property: either replace it whole, or add
// and remove entries (Exchange's @{Add=…; Remove=…}).
type ListPatch[T any] struct {
	Replace Opt[[]T]
	Add     []T
	Remove  []T
}

func (l ListPatch[T]) isEmpty() bool {
	return !l.Replace.Set && len(l.Add) == 0 && len(l.Remove) == 0
}

// Patch is what New-SendConnector or Set-SendConnector was asked to change.
// Unset fields keep their current (or default) value.
type Patch struct {
	Name                         Opt[string]
	AddressSpaces                ListPatch[AddressSpace]
	DNSRoutingEnabled            Opt[bool]
	SmartHosts                   ListPatch[SmartHost]
	SmartHostAuthMechanism       Opt[AuthMechanism]
	AuthenticationCredential     Opt[*Credential]
	MaxMessageSize               Opt[ByteSize]
	Port                         Opt[int]
	Fqdn                         Opt[string]
	ForceHELO                    Opt[bool]
	RequireTLS                   Opt[bool]
	IgnoreSTARTTLS               Opt[bool]
	TlsAuthLevel                 Opt[TlsAuthLevel]
	TlsDomain                    Opt[string]
	TlsCertificateName           Opt[CertificateName]
	DomainSecureEnabled          Opt[bool]
	IsScopedConnector            Opt[bool]
	SourceTransportServers       ListPatch[string]
	SourceIPAddress              Opt[netip.Addr]
	ConnectionInactivityTimeOut  Opt[TimeSpan]
	SmtpMaxMessagesPerConnection Opt[int]
	ErrorPolicies                Opt[ErrorPolicies]
	UseExternalDNSServersEnabled Opt[bool]
	FrontendProxyEnabled         Opt[bool]
	CloudServicesMailEnabled     Opt[bool]
	ProtocolLoggingLevel         Opt[ProtocolLoggingLevel]
	Comment                      Opt[string]
	Enabled                      Opt[bool]
	ConnectorType                Opt[ConnectorType]
	RequireOorg                  Opt[bool]
}

// IsEmpty reports whether the patch changes nothing.
func (p *Patch) IsEmpty() bool {
	return !p.Name.Set && p.AddressSpaces.isEmpty() && !p.DNSRoutingEnabled.Set && p.SmartHosts.isEmpty() &&
		!p.SmartHostAuthMechanism.Set && !p.AuthenticationCredential.Set && !p.MaxMessageSize.Set &&
		!p.Port.Set && !p.Fqdn.Set && !p.ForceHELO.Set && !p.RequireTLS.Set && !p.IgnoreSTARTTLS.Set &&
		!p.TlsAuthLevel.Set && !p.TlsDomain.Set && !p.TlsCertificateName.Set && !p.DomainSecureEnabled.Set &&
		!p.IsScopedConnector.Set && p.SourceTransportServers.isEmpty() && !p.SourceIPAddress.Set &&
		!p.ConnectionInactivityTimeOut.Set && !p.SmtpMaxMessagesPerConnection.Set && !p.ErrorPolicies.Set &&
		!p.UseExternalDNSServersEnabled.Set && !p.FrontendProxyEnabled.Set && !p.CloudServicesMailEnabled.Set &&
		!p.ProtocolLoggingLevel.Set && !p.Comment.Set && !p.Enabled.Set && !p.ConnectorType.Set && !p.RequireOorg.Set
}

// New creates a connector the way New-SendConnector does: defaults, then the
// usage template, then the patch, then validation. Name and AddressSpaces
// are required. Notices are things the admin should be told (on stderr).
func New(d Defaults, usage Usage, p Patch) (SendConnector, []string, error) {
	var ps problems
	if !p.Name.Set || p.Name.V == "" {
		ps.add("Name", "", "NameRequired", "a name is required (--name or the first argument)")
	}
	if !p.AddressSpaces.Replace.Set || len(p.AddressSpaces.Replace.V) == 0 {
		if len(p.AddressSpaces.Add) == 0 {
			ps.add("AddressSpaces", "", "NoAddressSpaces", "at least one address space is required (e.g. --address-spaces '*')")
		}
	}
	c := newDefault(d)
	switch usage {
	case UsageInternal:
		if !p.MaxMessageSize.Set {
			c.MaxMessageSize = Unlimited
		}
	case UsagePartner:
		// A partner connector is domain-secured, which only works with MX
		// routing: both become explicit choices, so "--partner
		// --smart-hosts x" without "--dns-routing-enabled=false" is refused
		// as in Exchange.
		if !p.DomainSecureEnabled.Set {
			p.DomainSecureEnabled = Some(true)
		}
		if !p.DNSRoutingEnabled.Set {
			p.DNSRoutingEnabled = Some(true)
		}
	}
	next, notices, err := c.apply(p, false)
	if err != nil {
		ps.addErr("", "", err)
	}
	if len(ps.list) == 0 {
		if err := next.Validate(); err != nil {
			ps.addErr("", "", err)
		}
	}
	return next, notices, ps.err()
}

// Apply returns the connector with the patch applied (Set-SendConnector) and
// validated. The receiver is not modified.
func (c SendConnector) Apply(p Patch) (SendConnector, []string, error) {
	next, notices, err := c.apply(p, true)
	if err != nil {
		return c, nil, err
	}
	if err := next.Validate(); err != nil {
		return c, nil, err
	}
	return next, notices, nil
}

func (c SendConnector) apply(p Patch, existing bool) (SendConnector, []string, error) {
	c = c.Clone()
	var ps problems
	var notices []string

	setOpt(&c.Name, p.Name)
	setOpt(&c.SmartHostAuthMechanism, p.SmartHostAuthMechanism)
	setOpt(&c.AuthenticationCredential, p.AuthenticationCredential)
	setOpt(&c.MaxMessageSize, p.MaxMessageSize)
	setOpt(&c.Port, p.Port)
	setOpt(&c.Fqdn, p.Fqdn)
	setOpt(&c.ForceHELO, p.ForceHELO)
	setOpt(&c.RequireTLS, p.RequireTLS)
	setOpt(&c.IgnoreSTARTTLS, p.IgnoreSTARTTLS)
	setOpt(&c.TlsAuthLevel, p.TlsAuthLevel)
	setOpt(&c.TlsDomain, p.TlsDomain)
	setOpt(&c.TlsCertificateName, p.TlsCertificateName)
	setOpt(&c.DomainSecureEnabled, p.DomainSecureEnabled)
	setOpt(&c.IsScopedConnector, p.IsScopedConnector)
	setOpt(&c.SourceIPAddress, p.SourceIPAddress)
	setOpt(&c.ConnectionInactivityTimeOut, p.ConnectionInactivityTimeOut)
	setOpt(&c.SmtpMaxMessagesPerConnection, p.SmtpMaxMessagesPerConnection)
	setOpt(&c.ErrorPolicies, p.ErrorPolicies)
	setOpt(&c.UseExternalDNSServersEnabled, p.UseExternalDNSServersEnabled)
	setOpt(&c.FrontendProxyEnabled, p.FrontendProxyEnabled)
	setOpt(&c.CloudServicesMailEnabled, p.CloudServicesMailEnabled)
	setOpt(&c.ProtocolLoggingLevel, p.ProtocolLoggingLevel)
	setOpt(&c.Comment, p.Comment)
	setOpt(&c.Enabled, p.Enabled)
	setOpt(&c.ConnectorType, p.ConnectorType)
	setOpt(&c.RequireOorg, p.RequireOorg)

	var n []string
	c.AddressSpaces, n = applyList(&ps, "AddressSpaces", c.AddressSpaces, p.AddressSpaces, AddressSpace.SameAddress)
	notices = append(notices, n...)
	c.SmartHosts, n = applyList(&ps, "SmartHosts", c.SmartHosts, p.SmartHosts, func(a, b SmartHost) bool { return a == b })
	notices = append(notices, n...)
	c.SourceTransportServers, n = applyList(&ps, "SourceTransportServers", c.SourceTransportServers, p.SourceTransportServers, strings.EqualFold)
	notices = append(notices, n...)
	c.AddressSpaces = dedupAddressSpaces(c.AddressSpaces)
	c.SmartHosts = dedupSmartHosts(c.SmartHosts)
	c.SourceTransportServers = dedupFold(c.SourceTransportServers)

	if p.DNSRoutingEnabled.Set {
		smartHostsGiven := (p.SmartHosts.Replace.Set && len(p.SmartHosts.Replace.V) > 0) || len(p.SmartHosts.Add) > 0
		switch {
		case p.DNSRoutingEnabled.V && smartHostsGiven:
			ps.add("DNSRoutingEnabled", "True", "DNSRoutingEnabledMustNotBeSpecified",
				"DNS routing cannot be enabled together with smart hosts; drop --dns-routing-enabled=true or the smart hosts")
		case p.DNSRoutingEnabled.V && len(c.SmartHosts) > 0:
			notices = append(notices, switchToDNSRouting(&c, p)...)
		case !p.DNSRoutingEnabled.V && len(c.SmartHosts) == 0:
			ps.add("SmartHosts", "", "SmartHostNotSet", "smart hosts are required when DNSRoutingEnabled is False (--smart-hosts)")
		}
	}
	return c, notices, ps.err()
}

// switchToDNSRouting clears what only a smart-host connector can use, as
// Set-SendConnector -DNSRoutingEnabled $true does, and says what it cleared.
func switchToDNSRouting(c *SendConnector, p Patch) []string {
	notices := []string{fmt.Sprintf("DNSRoutingEnabled is now True: removed SmartHosts %s", SmartHostsString(c.SmartHosts))}
	c.SmartHosts = nil
	if !p.SmartHostAuthMechanism.Set && c.SmartHostAuthMechanism != AuthNone {
		notices = append(notices, fmt.Sprintf("SmartHostAuthMechanism reset from %s to None", c.SmartHostAuthMechanism))
		c.SmartHostAuthMechanism = AuthNone
	}
	if !p.AuthenticationCredential.Set && c.AuthenticationCredential != nil {
		notices = append(notices, "AuthenticationCredential cleared")
		c.AuthenticationCredential = nil
	}
	return notices
}

func setOpt[T any](dst *T, o Opt[T]) {
	if o.Set {
		*dst = o.V
	}
}

// applyList applies a ListPatch. Replacing and adding/removing in the same
// command is refused: the result would depend on an order nobody sees.
// Removing an absent entry is not an error (the result is what was asked)
// but is reported as a notice.
func applyList[T any](ps *problems, property string, cur []T, lp ListPatch[T], same func(a, b T) bool) ([]T, []string) {
	if lp.Replace.Set && (len(lp.Add) > 0 || len(lp.Remove) > 0) {
		ps.add(property, "", "ConflictingListChange", "give either the whole list or entries to add/remove, not both")
		return cur, nil
	}
	if lp.Replace.Set {
		return append([]T(nil), lp.Replace.V...), nil
	}
	out := append(cur, lp.Add...)
	var notices []string
	for _, r := range lp.Remove {
		kept := out[:0:0]
		found := false
		for _, v := range out {
			if same(v, r) {
				found = true
				continue
			}
			kept = append(kept, v)
		}
		if !found {
			notices = append(notices, fmt.Sprintf("%s: %s is not in the list; nothing removed", property, fmt.Sprint(r)))
		}
		out = kept
	}
	return out, notices
}

func dedupFold(in []string) []string {
	var out []string
	for _, s := range in {
		dup := false
		for _, o := range out {
			if strings.EqualFold(s, o) {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, s)
		}
	}
	return out
}
