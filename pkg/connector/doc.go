// Package connector is the Send connector model: the SendConnector type with
// every property Exchange gives it, the value syntaxes those properties use
// (address spaces, smart hosts, byte sizes, time spans, certificate names,
// enumerations), the usage templates of New-SendConnector, Set-SendConnector's
// patch semantics, and validation.
//
// Everything here is pure: no I/O, no clocks, no globals that change. The
// parsers are the single place a value's syntax is defined; each one has a
// canonical printed form it parses back to the same value, which the fuzz
// tests hold it to.
//
// The rules that tie properties together (DNS routing versus smart hosts, the
// TLS knobs, credentials) live in Validate, which New and Apply both run on
// their result, so a rule is written once. Validation reports every broken
// rule at once, each naming the property with its Exchange name.
//
// Properties is the one list the CLI builds its flags, help text, parameter
// spellings and printers from.
package connector
