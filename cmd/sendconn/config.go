package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/sendconn/sendconn/pkg/connector"
)

// Config is the whole configuration after defaults, the config file,
// SENDCONN_* environment variables and flags (in rising precedence).
type Config struct {
	File         string // the config file read, "" when none
	Store        string
	StoreTimeout time.Duration

	EtcdCAFile       string
	EtcdCert         string
	EtcdKey          string
	EtcdUsername     string
	EtcdPasswordFile string

	ServerName         string
	ServerFQDN         string
	ServerSite         string
	ServerRoles        []string
	OrganizationDomain string

	OrganizationListen  string
	OrganizationAddress string
	OrganizationCAFile  string
	OrganizationCert    string
	OrganizationKey     string

	ReceiveListen            string
	ReceiveRemoteIPRanges    []netip.Prefix
	ReceiveUsers             []ReceiveUser
	ReceiveTLSCert           string
	ReceiveTLSKey            string
	ReceiveAllowInsecureAuth bool
	ReceiveMaxMessageSize    connector.ByteSize
	ReceiveMaxRecipients     int
	ReceiveMaxConnections    int
	ReceiveCommandTimeout    time.Duration
	ReceiveDataTimeout       time.Duration

	DNSInternalServers []string
	DNSExternalServers []string

	TLSCAFile       string
	TLSCertificates []TLSCertificate

	QueueDir string

	MaxPerDomainOutboundConnections        int
	MaxOutboundConnections                 int
	TransientFailureRetryCount             int
	TransientFailureRetryInterval          time.Duration
	OutboundConnectionFailureRetryInterval time.Duration
	MessageRetryInterval                   time.Duration
	MessageExpirationTimeout               time.Duration
	DelayNotificationTimeout               time.Duration
	ShutdownTimeout                        time.Duration

	AdminSocket        string
	AdminMetricsListen string
	AdminPprof         bool

	SendProtocolLogPath             string
	SendProtocolLogMaxFileSize      connector.ByteSize
	SendProtocolLogMaxDirectorySize connector.ByteSize
	SendProtocolLogMaxAge           time.Duration
	MessageTrackingLogPath          string
	MessageTrackingLogMaxFileSize   connector.ByteSize
	MessageTrackingLogMaxDirSize    connector.ByteSize
	MessageTrackingLogMaxAge        time.Duration

	LogLevel  string
	LogFormat string
}

// ReceiveUser is a client allowed to relay after SMTP AUTH; the password is
// stored only as a hash.
type ReceiveUser struct {
	Name         string
	PasswordHash string
}

// TLSCertificate is a certificate/key pair the server may present.
type TLSCertificate struct {
	Cert string
	Key  string
}

type keyKind int

const (
	kindString keyKind = iota
	kindDuration
	kindSize
	kindInt
	kindBool
	kindList
	kindPrefixList
	kindObjectList
)

// configKey declares one configuration key: its kind, how its default is
// found, and where the parsed value goes.
type configKey struct {
	name string
	kind keyKind
	def  func(env *configEnv) any
	// fields of objects in a kindObjectList, required ones first
	fields []string
	set    func(c *Config, v any)
}

// configEnv is what defaults depend on.
type configEnv struct {
	getenv   func(string) string
	euid     int
	hostname string
}

func (e *configEnv) isRoot() bool { return e.euid == 0 }

// dataDir is where state lives: /var/lib/sendconn for root, else the XDG
// data directory.
func (e *configEnv) dataDir() string {
	if e.isRoot() {
		return "/var/lib/sendconn"
	}
	return filepath.Join(xdgDir(e.getenv, "XDG_DATA_HOME", ".local/share"), "sendconn")
}

func (e *configEnv) stateDir(rootDir string) string {
	if e.isRoot() {
		return rootDir
	}
	return filepath.Join(xdgDir(e.getenv, "XDG_STATE_HOME", ".local/state"), "sendconn")
}

func (e *configEnv) runtimeDir() string {
	if e.isRoot() {
		return "/run/sendconn"
	}
	if d := e.getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "sendconn")
	}
	return e.dataDir()
}

func xdgDir(getenv func(string) string, variable, fallback string) string {
	if d := getenv(variable); d != "" && filepath.IsAbs(d) {
		return d
	}
	home := getenv("HOME")
	if home == "" {
		home = "/"
	}
	return filepath.Join(home, fallback)
}

func str(s string) func(*configEnv) any { return func(*configEnv) any { return s } }

var configKeys = []configKey{
	{name: "store", kind: kindString, def: func(e *configEnv) any { return filepath.Join(e.dataDir(), "sendconn.db") },
		set: func(c *Config, v any) { c.Store = v.(string) }},
	{name: "store-timeout", kind: kindDuration, def: str("5s"), set: func(c *Config, v any) { c.StoreTimeout = v.(time.Duration) }},
	{name: "server.name", kind: kindString, def: func(e *configEnv) any { return strings.SplitN(e.hostname, ".", 2)[0] },
		set: func(c *Config, v any) { c.ServerName = v.(string) }},
	{name: "server.fqdn", kind: kindString, def: func(e *configEnv) any { return e.hostname },
		set: func(c *Config, v any) { c.ServerFQDN = v.(string) }},
	{name: "server.site", kind: kindString, def: str("Default-First-Site-Name"), set: func(c *Config, v any) { c.ServerSite = v.(string) }},
	{name: "server.roles", kind: kindList, def: func(*configEnv) any { return []string{"hub", "frontend"} }, set: func(c *Config, v any) { c.ServerRoles = v.([]string) }},
	{name: "organization.domain", kind: kindString, def: str("SENDCONN"), set: func(c *Config, v any) { c.OrganizationDomain = v.(string) }},
	{name: "organization.listen", kind: kindString, def: str(""), set: func(c *Config, v any) { c.OrganizationListen = v.(string) }},
	{name: "organization.address", kind: kindString, def: str(""), set: func(c *Config, v any) { c.OrganizationAddress = v.(string) }},
	{name: "organization.ca-file", kind: kindString, def: str(""), set: func(c *Config, v any) { c.OrganizationCAFile = v.(string) }},
	{name: "organization.cert", kind: kindString, def: str(""), set: func(c *Config, v any) { c.OrganizationCert = v.(string) }},
	{name: "organization.key", kind: kindString, def: str(""), set: func(c *Config, v any) { c.OrganizationKey = v.(string) }},

	{name: "etcd.ca-file", kind: kindString, def: str(""), set: func(c *Config, v any) { c.EtcdCAFile = v.(string) }},
	{name: "etcd.cert", kind: kindString, def: str(""), set: func(c *Config, v any) { c.EtcdCert = v.(string) }},
	{name: "etcd.key", kind: kindString, def: str(""), set: func(c *Config, v any) { c.EtcdKey = v.(string) }},
	{name: "etcd.username", kind: kindString, def: str(""), set: func(c *Config, v any) { c.EtcdUsername = v.(string) }},
	{name: "etcd.password-file", kind: kindString, def: str(""), set: func(c *Config, v any) { c.EtcdPasswordFile = v.(string) }},

	{name: "receive.listen", kind: kindString, def: str("127.0.0.1:2525"), set: func(c *Config, v any) { c.ReceiveListen = v.(string) }},
	{name: "receive.remote-ip-ranges", kind: kindPrefixList, def: func(*configEnv) any { return []string{"127.0.0.0/8", "::1/128"} },
		set: func(c *Config, v any) { c.ReceiveRemoteIPRanges = v.([]netip.Prefix) }},
	{name: "receive.users", kind: kindObjectList, fields: []string{"name", "password-hash"}, def: func(*configEnv) any { return []any{} },
		set: func(c *Config, v any) {
			for _, m := range v.([]map[string]string) {
				c.ReceiveUsers = append(c.ReceiveUsers, ReceiveUser{Name: m["name"], PasswordHash: m["password-hash"]})
			}
		}},
	{name: "receive.tls.cert", kind: kindString, def: str(""), set: func(c *Config, v any) { c.ReceiveTLSCert = v.(string) }},
	{name: "receive.tls.key", kind: kindString, def: str(""), set: func(c *Config, v any) { c.ReceiveTLSKey = v.(string) }},
	{name: "receive.allow-insecure-auth", kind: kindBool, def: func(*configEnv) any { return false },
		set: func(c *Config, v any) { c.ReceiveAllowInsecureAuth = v.(bool) }},
	{name: "receive.max-message-size", kind: kindSize, def: str("36MB"), set: func(c *Config, v any) { c.ReceiveMaxMessageSize = v.(connector.ByteSize) }},
	{name: "receive.max-recipients", kind: kindInt, def: str("200"), set: func(c *Config, v any) { c.ReceiveMaxRecipients = v.(int) }},
	{name: "receive.max-connections", kind: kindInt, def: str("500"), set: func(c *Config, v any) { c.ReceiveMaxConnections = v.(int) }},
	{name: "receive.command-timeout", kind: kindDuration, def: str("5m"), set: func(c *Config, v any) { c.ReceiveCommandTimeout = v.(time.Duration) }},
	{name: "receive.data-timeout", kind: kindDuration, def: str("10m"), set: func(c *Config, v any) { c.ReceiveDataTimeout = v.(time.Duration) }},

	{name: "dns.internal-servers", kind: kindList, def: func(*configEnv) any { return []string{} }, set: func(c *Config, v any) { c.DNSInternalServers = v.([]string) }},
	{name: "dns.external-servers", kind: kindList, def: func(*configEnv) any { return []string{} }, set: func(c *Config, v any) { c.DNSExternalServers = v.([]string) }},

	{name: "tls.ca-file", kind: kindString, def: str(""), set: func(c *Config, v any) { c.TLSCAFile = v.(string) }},
	{name: "tls.certificates", kind: kindObjectList, fields: []string{"cert", "key"}, def: func(*configEnv) any { return []any{} },
		set: func(c *Config, v any) {
			for _, m := range v.([]map[string]string) {
				c.TLSCertificates = append(c.TLSCertificates, TLSCertificate{Cert: m["cert"], Key: m["key"]})
			}
		}},

	{name: "queue.dir", kind: kindString, def: func(e *configEnv) any {
		if e.isRoot() {
			return "/var/spool/sendconn"
		}
		return filepath.Join(e.dataDir(), "queue")
	}, set: func(c *Config, v any) { c.QueueDir = v.(string) }},

	{name: "transport.max-per-domain-outbound-connections", kind: kindInt, def: str("20"), set: func(c *Config, v any) { c.MaxPerDomainOutboundConnections = v.(int) }},
	{name: "transport.max-outbound-connections", kind: kindInt, def: str("1000"), set: func(c *Config, v any) { c.MaxOutboundConnections = v.(int) }},
	{name: "transport.transient-failure-retry-count", kind: kindInt, def: str("6"), set: func(c *Config, v any) { c.TransientFailureRetryCount = v.(int) }},
	{name: "transport.transient-failure-retry-interval", kind: kindDuration, def: str("5m"), set: func(c *Config, v any) { c.TransientFailureRetryInterval = v.(time.Duration) }},
	{name: "transport.outbound-connection-failure-retry-interval", kind: kindDuration, def: str("10m"), set: func(c *Config, v any) { c.OutboundConnectionFailureRetryInterval = v.(time.Duration) }},
	{name: "transport.message-retry-interval", kind: kindDuration, def: str("5m"), set: func(c *Config, v any) { c.MessageRetryInterval = v.(time.Duration) }},
	{name: "transport.message-expiration-timeout", kind: kindDuration, def: str("2d"), set: func(c *Config, v any) { c.MessageExpirationTimeout = v.(time.Duration) }},
	{name: "transport.delay-notification-timeout", kind: kindDuration, def: str("4h"), set: func(c *Config, v any) { c.DelayNotificationTimeout = v.(time.Duration) }},
	{name: "transport.shutdown-timeout", kind: kindDuration, def: str("30s"), set: func(c *Config, v any) { c.ShutdownTimeout = v.(time.Duration) }},

	{name: "admin.socket", kind: kindString, def: func(e *configEnv) any { return filepath.Join(e.runtimeDir(), "admin.sock") },
		set: func(c *Config, v any) { c.AdminSocket = v.(string) }},
	{name: "admin.metrics-listen", kind: kindString, def: str(""), set: func(c *Config, v any) { c.AdminMetricsListen = v.(string) }},
	{name: "admin.pprof", kind: kindBool, def: func(*configEnv) any { return false }, set: func(c *Config, v any) { c.AdminPprof = v.(bool) }},

	{name: "logs.send-protocol-log-path", kind: kindString, def: func(e *configEnv) any {
		return filepath.Join(e.stateDir("/var/log/sendconn"), "ProtocolLog", "SmtpSend")
	}, set: func(c *Config, v any) { c.SendProtocolLogPath = v.(string) }},
	{name: "logs.send-protocol-log-max-file-size", kind: kindSize, def: str("10MB"), set: func(c *Config, v any) { c.SendProtocolLogMaxFileSize = v.(connector.ByteSize) }},
	{name: "logs.send-protocol-log-max-directory-size", kind: kindSize, def: str("250MB"), set: func(c *Config, v any) { c.SendProtocolLogMaxDirectorySize = v.(connector.ByteSize) }},
	{name: "logs.send-protocol-log-max-age", kind: kindDuration, def: str("30d"), set: func(c *Config, v any) { c.SendProtocolLogMaxAge = v.(time.Duration) }},
	{name: "logs.message-tracking-log-path", kind: kindString, def: func(e *configEnv) any {
		return filepath.Join(e.stateDir("/var/log/sendconn"), "MessageTracking")
	}, set: func(c *Config, v any) { c.MessageTrackingLogPath = v.(string) }},
	{name: "logs.message-tracking-log-max-file-size", kind: kindSize, def: str("10MB"), set: func(c *Config, v any) { c.MessageTrackingLogMaxFileSize = v.(connector.ByteSize) }},
	{name: "logs.message-tracking-log-max-directory-size", kind: kindSize, def: str("1000MB"), set: func(c *Config, v any) { c.MessageTrackingLogMaxDirSize = v.(connector.ByteSize) }},
	{name: "logs.message-tracking-log-max-age", kind: kindDuration, def: str("30d"), set: func(c *Config, v any) { c.MessageTrackingLogMaxAge = v.(time.Duration) }},

	{name: "log.level", kind: kindString, def: str("info"), set: func(c *Config, v any) { c.LogLevel = v.(string) }},
	{name: "log.format", kind: kindString, def: str("text"), set: func(c *Config, v any) { c.LogFormat = v.(string) }},
}

// configFlags maps flags that may set a key; they are bound to the key
// when the command that runs has them.
var configFlags = map[string]string{
	"store":         "store",
	"store-timeout": "store-timeout",
	"log-level":     "log.level",
	"log-format":    "log.format",
	"admin-socket":  "admin.socket",
}

// envKey is the environment variable of a key: SENDCONN_ + the key with dots
// and dashes as underscores, upper case (receive.max-message-size is
// SENDCONN_RECEIVE_MAX_MESSAGE_SIZE).
func envKey(key string) string {
	return "SENDCONN_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(key))
}

// loadConfig resolves every key (flag > environment > config file >
// default), parses it and validates the result, naming the key in any
// error. viper reads the file and holds the defaults; the precedence of
// flags and environment is applied here, key by key, so that it is the
// same for every kind of value.
func loadConfig(env *configEnv, flags *pflag.FlagSet, explicitFile string) (*Config, error) {
	v := viper.New()
	for _, k := range configKeys {
		v.SetDefault(k.name, k.def(env))
	}
	file := explicitFile
	if file == "" {
		file = env.getenv("SENDCONN_CONFIG")
	}
	if file != "" {
		if _, err := os.Stat(file); err != nil {
			return nil, fmt.Errorf("config file %s: %w", file, errors.Unwrap(err))
		}
	} else {
		for _, candidate := range defaultConfigFiles(env) {
			if _, err := os.Stat(candidate); err == nil {
				file = candidate
				break
			}
		}
	}
	if file != "" {
		v.SetConfigFile(file)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("read config file %s: %w", file, err)
		}
	}
	known := make(map[string]bool, len(configKeys))
	for _, k := range configKeys {
		known[k.name] = true
	}
	var unknown []string
	for _, k := range v.AllKeys() {
		if !known[k] && !(isSection(k) && isEmptySection(v.Get(k))) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, withHint(fmt.Errorf("config file %s: unknown key %s", file, strings.Join(unknown, ", ")),
			"docs/sendconn.example.yaml lists every key")
	}
	flagFor := map[string]string{}
	for flag, key := range configFlags {
		flagFor[key] = flag
	}
	cfg := &Config{File: file}
	for _, k := range configKeys {
		raw, source := v.Get(k.name), "config key "+k.name
		if val := env.getenv(envKey(k.name)); val != "" {
			raw, source = val, envKey(k.name)
		}
		if f := flags.Lookup(flagFor[k.name]); f != nil && f.Changed {
			raw, source = f.Value.String(), "--"+f.Name
		}
		val, err := parseConfigValue(k, raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", source, err)
		}
		k.set(cfg, val)
	}
	return cfg, validateConfig(cfg)
}

// isSection reports whether k is the parent of known keys (an empty
// "queue:" section reads as a null key, which is harmless).
func isSection(k string) bool {
	for _, key := range configKeys {
		if strings.HasPrefix(key.name, k+".") {
			return true
		}
	}
	return false
}

func isEmptySection(v any) bool {
	switch v.(type) {
	case nil, map[string]any:
		return true
	}
	return false
}

func defaultConfigFiles(env *configEnv) []string {
	return []string{"/etc/sendconn/sendconn.yaml", filepath.Join(xdgDir(env.getenv, "XDG_CONFIG_HOME", ".config"), "sendconn", "sendconn.yaml")}
}

func parseConfigValue(k configKey, raw any) (any, error) {
	switch k.kind {
	case kindString:
		s, ok := raw.(string)
		if !ok {
			return nil, fmt.Errorf("want a string, got %v", raw)
		}
		return s, nil
	case kindDuration:
		ts, err := connector.ParseTimeSpan(fmt.Sprint(raw))
		return ts.Duration(), err
	case kindSize:
		return connector.ParseByteSize(fmt.Sprint(raw))
	case kindInt:
		n, err := strconv.Atoi(strings.TrimSpace(fmt.Sprint(raw)))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%v is not a non-negative whole number", raw)
		}
		return n, nil
	case kindBool:
		return connector.ParseBool(fmt.Sprint(raw))
	case kindList:
		return toStringList(raw)
	case kindPrefixList:
		items, err := toStringList(raw)
		if err != nil {
			return nil, err
		}
		var out []netip.Prefix
		for _, s := range items {
			p, err := parsePrefix(s)
			if err != nil {
				return nil, err
			}
			out = append(out, p)
		}
		return out, nil
	case kindObjectList:
		return toObjectList(raw, k.fields)
	}
	return nil, fmt.Errorf("unsupported kind")
}

// toStringList accepts a YAML list, or a string with items separated by
// commas or spaces (the form an environment variable gives).
func toStringList(raw any) ([]string, error) {
	switch x := raw.(type) {
	case []string:
		return x, nil
	case []any:
		out := make([]string, 0, len(x))
		for _, item := range x {
			s, ok := item.(string)
			if !ok {
				return nil, fmt.Errorf("list item %v is not a string", item)
			}
			out = append(out, s)
		}
		return out, nil
	case string:
		return strings.FieldsFunc(x, func(r rune) bool { return r == ',' || r == ' ' }), nil
	}
	return nil, fmt.Errorf("want a list, got %v", raw)
}

func toObjectList(raw any, fields []string) ([]map[string]string, error) {
	items, ok := raw.([]any)
	if !ok {
		return nil, fmt.Errorf("want a list of objects with keys %s", strings.Join(fields, ", "))
	}
	var out []map[string]string
	for i, item := range items {
		m, ok := item.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("item %d is not an object with keys %s", i+1, strings.Join(fields, ", "))
		}
		obj := map[string]string{}
		for key, val := range m {
			if !contains(fields, key) {
				return nil, fmt.Errorf("item %d: unknown key %q (valid: %s)", i+1, key, strings.Join(fields, ", "))
			}
			obj[key] = fmt.Sprint(val)
		}
		for _, f := range fields {
			if obj[f] == "" {
				return nil, fmt.Errorf("item %d: %s is required", i+1, f)
			}
		}
		out = append(out, obj)
	}
	return out, nil
}

// parsePrefix reads a CIDR range or a single address.
func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an address range such as 192.168.0.0/16", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or address range", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func validateConfig(c *Config) error {
	var errs []string
	if c.Store == "" {
		errs = append(errs, "store: must not be empty")
	}
	if err := connector.ValidateServerName(c.ServerName); err != nil {
		errs = append(errs, fmt.Sprintf("server.name %q: %v (set server.name)", c.ServerName, err))
	}
	if c.ServerFQDN != "" {
		if _, err := connector.NormalizeHostName(c.ServerFQDN); err != nil {
			errs = append(errs, fmt.Sprintf("server.fqdn %q: %v", c.ServerFQDN, err))
		}
	}
	if strings.ContainsAny(c.OrganizationDomain, `\@ `) || c.OrganizationDomain == "" {
		errs = append(errs, fmt.Sprintf("organization.domain %q: must be a domain name such as CONTOSO", c.OrganizationDomain))
	}
	if (c.ReceiveTLSCert == "") != (c.ReceiveTLSKey == "") {
		errs = append(errs, "receive.tls.cert and receive.tls.key: give both or neither")
	}
	if (c.EtcdCert == "") != (c.EtcdKey == "") {
		errs = append(errs, "etcd.cert and etcd.key: give both or neither")
	}
	if len(c.ServerRoles) == 0 {
		errs = append(errs, "server.roles: name at least one of hub, frontend")
	}
	for _, r := range c.ServerRoles {
		if r != "hub" && r != "frontend" {
			errs = append(errs, fmt.Sprintf("server.roles %q: must be hub or frontend", r))
		}
	}
	if c.OrganizationListen != "" {
		if c.OrganizationCAFile == "" || c.OrganizationCert == "" || c.OrganizationKey == "" {
			errs = append(errs, "organization.listen: needs organization.ca-file, organization.cert and organization.key (servers of the organization prove who they are with them)")
		}
	} else if c.OrganizationAddress != "" {
		errs = append(errs, "organization.address: set organization.listen too")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Sprintf("log.level %q: must be debug, info, warn or error", c.LogLevel))
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		errs = append(errs, fmt.Sprintf("log.format %q: must be text or json", c.LogFormat))
	}
	if c.MaxPerDomainOutboundConnections < 1 || c.MaxOutboundConnections < 1 || c.MaxPerDomainOutboundConnections > c.MaxOutboundConnections {
		errs = append(errs, "transport.max-per-domain-outbound-connections: must be between 1 and transport.max-outbound-connections")
	}
	if len(errs) > 0 {
		return errors.New("config: " + strings.Join(errs, "; "))
	}
	return nil
}

func contains(xs []string, x string) bool {
	for _, s := range xs {
		if s == x {
			return true
		}
	}
	return false
}
