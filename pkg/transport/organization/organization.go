// Package organization is what the transport servers of one organization
// share with each other: how they prove who they are, the listener other
// servers reach them on, and the frontend proxy that lets a server send
// mail from another server's address.
//
// Trust. Every server holds a certificate issued by the organization's
// own CA (organization.ca-file) and the organization listener accepts
// only clients presenting one: mutual TLS from the first byte, with no
// plain-text phase to downgrade. A client that completed that handshake is
// a server of the organization, so its mail keeps its Organization and
// Forest headers (the header firewall treats it as <Domain>\Exchange
// Servers). Anyone else either fails the handshake here or uses the
// ordinary receive listener, where those headers are always stripped.
//
// One listener, two protocols, told apart by ALPN: ProtoSMTP is an SMTP
// session (the intra-organization relay hop), ProtoProxy asks a frontend
// server to open a TCP connection on the caller's behalf (FrontendProxyEnabled).
package organization

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// ALPN protocol names on the organization listener.
const (
	ProtoSMTP  = "sendconn-smtp"
	ProtoProxy = "sendconn-proxy"
)

// Peer is another server of the organization as the transport sees it.
type Peer struct {
	Name     string
	Fqdn     string
	Site     string
	Hub      bool   // may relay mail for connectors it is a source server of
	Frontend bool   // runs the outbound proxy
	Address  string // host:port of its organization listener; "" if it has none
	Up       bool   // heartbeat current
}

// TLS is this server's identity within the organization and the CA that
// vouches for the others.
type TLS struct {
	Certificate tls.Certificate
	Roots       *x509.CertPool
}

// LoadTLS reads the organization CA and this server's certificate and key.
func LoadTLS(caFile, certFile, keyFile string) (*TLS, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("organization CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("organization CA %s: no PEM certificates in it", caFile)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("organization certificate: %w", err)
	}
	// The certificate must itself be one the others accept, or every hop
	// fails later with a message far from the cause.
	opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	for _, c := range cert.Certificate[1:] {
		if ic, err := x509.ParseCertificate(c); err == nil {
			opts.Intermediates.AddCert(ic)
		}
	}
	if _, err := cert.Leaf.Verify(opts); err != nil {
		return nil, fmt.Errorf("organization certificate %s is not a client certificate of the organization CA: %w", certFile, err)
	}
	return &TLS{Certificate: cert, Roots: roots}, nil
}

// ServerConfig is the organization listener's TLS: a client certificate
// from the organization CA is required.
func (t *TLS) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{t.Certificate},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    t.Roots,
		NextProtos:   []string{ProtoSMTP, ProtoProxy},
	}
}

// ClientConfig is the TLS for connecting to the server named fqdn: its
// certificate must come from the organization CA and be valid for fqdn.
func (t *TLS) ClientConfig(fqdn, proto string) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{t.Certificate},
		RootCAs:      t.Roots,
		ServerName:   fqdn,
		NextProtos:   []string{proto},
	}
}

// PeerName is the name a verified organization certificate gives its
// holder: the first DNS name, else the common name.
func PeerName(cs tls.ConnectionState) string {
	if len(cs.PeerCertificates) == 0 {
		return ""
	}
	leaf := cs.PeerCertificates[0]
	if len(leaf.DNSNames) > 0 {
		return leaf.DNSNames[0]
	}
	return leaf.Subject.CommonName
}
