package connector

import (
	"strings"
	"time"
)

// DomainType says how the organization treats mail for an accepted domain.
// Authoritative and InternalRelay domains are what the "--" address space
// stands for.
type DomainType uint8

const (
	Authoritative DomainType = iota
	InternalRelay
	ExternalRelay
)

var domainTypeNames = []string{"Authoritative", "InternalRelay", "ExternalRelay"}

// DomainTypeNames lists the valid spellings, for help text and errors.
func DomainTypeNames() []string { return domainTypeNames }

func (t DomainType) String() string { return enumName(domainTypeNames, int(t)) }

// ParseDomainType accepts the names in any case.
func ParseDomainType(s string) (DomainType, error) {
	i, err := parseEnum("domain type", s, domainTypeNames)
	return DomainType(i), err
}

func (t DomainType) MarshalText() ([]byte, error) { return []byte(t.String()), nil }
func (t *DomainType) UnmarshalText(b []byte) (err error) {
	*t, err = ParseDomainType(string(b))
	return err
}

// Local reports whether the "--" address space covers domains of this type.
func (t DomainType) Local() bool { return t == Authoritative || t == InternalRelay }

// AcceptedDomain is a domain the organization receives mail for, as
// Exchange's New-AcceptedDomain keeps it. The JSON tags are the store schema.
type AcceptedDomain struct {
	Name        string     `json:"Name"`
	DomainName  string     `json:"DomainName"` // lower-case A-labels; "*.contoso.com" covers the domain and its subdomains
	DomainType  DomainType `json:"DomainType"`
	Default     bool       `json:"Default"`
	Guid        string     `json:"Guid"`
	WhenCreated time.Time  `json:"WhenCreated"`
	WhenChanged time.Time  `json:"WhenChanged"`
}

// Identity is how Exchange names an accepted domain: by its Name.
func (d AcceptedDomain) Identity() string { return d.Name }

// NewAcceptedDomain checks and normalizes an accepted domain from an admin's
// words, reporting every problem at once. An empty name defaults to the
// domain name, as New-AcceptedDomain's examples always give both and an
// admin who gives only the domain means it.
func NewAcceptedDomain(name, domainName, domainType string) (AcceptedDomain, error) {
	var ps problems
	d := AcceptedDomain{}
	if strings.TrimSpace(domainName) == "" {
		ps.add("DomainName", "", "ParameterRequired", "required")
	} else if dn, err := NormalizeWildcardDomain(strings.TrimSpace(domainName)); err != nil {
		ps.addErr("DomainName", domainName, err)
	} else {
		d.DomainName = dn
	}
	if name == "" {
		name = d.DomainName
	}
	if err := ValidateName(name); err != nil && name != "" {
		ps.addErr("Name", name, err)
	}
	d.Name = name
	if domainType != "" {
		t, err := ParseDomainType(domainType)
		if err != nil {
			ps.addErr("DomainType", domainType, err)
		}
		d.DomainType = t
	}
	return d, ps.err()
}

// Covers reports whether mail for domain (normalized, lower-case) belongs to
// this accepted domain: the domain itself, or for "*.d" d and every
// subdomain of d.
func (d AcceptedDomain) Covers(domain string) bool {
	if parent, ok := strings.CutPrefix(d.DomainName, "*."); ok {
		return domain == parent || strings.HasSuffix(domain, "."+parent)
	}
	return domain == d.DomainName
}
