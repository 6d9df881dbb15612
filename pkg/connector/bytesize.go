package connector

import (
	"encoding/json"
	"math/big"
	"strconv"
	"strings"
)

// ByteSize is a message size limit in bytes, always a whole number of KB (as
// Exchange stores it), or Unlimited.
type ByteSize int64

// Unlimited is the ByteSize with no limit.
const Unlimited ByteSize = -1

// MaxByteSize is the largest finite limit: 2147483647 KB.
const MaxByteSize ByteSize = 2147483647 * 1024

const kb = 1024

var sizeUnits = []struct {
	name  string
	bytes int64
}{
	{"TB", 1 << 40}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}, {"B", 1},
}

// IsUnlimited reports whether there is no limit.
func (s ByteSize) IsUnlimited() bool { return s < 0 }

// Bytes returns the limit in bytes; meaningless for Unlimited.
func (s ByteSize) Bytes() int64 { return int64(s) }

// Allows reports whether a message of n bytes fits under the limit.
func (s ByteSize) Allows(n int64) bool { return s.IsUnlimited() || n <= int64(s) }

// String prints Exchange's form: "35 MB (36,700,160 bytes)" or "Unlimited".
// The value is shown in the largest unit it reaches, with up to three
// decimals.
func (s ByteSize) String() string {
	if s.IsUnlimited() {
		return "Unlimited"
	}
	n := int64(s)
	unit := sizeUnits[len(sizeUnits)-1]
	for _, u := range sizeUnits {
		if n >= u.bytes {
			unit = u
			break
		}
	}
	v := new(big.Rat).SetFrac64(n, unit.bytes).FloatString(3)
	v = strings.TrimRight(strings.TrimRight(v, "0"), ".")
	return v + " " + unit.name + " (" + groupThousands(n) + " bytes)"
}

func groupThousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// ParseByteSize reads "Unlimited" or a number with an optional unit B, KB,
// MB, GB or TB (1 KB = 1024 B; a bare number is bytes; decimals allowed),
// rounding up to a whole KB. It also reads the printed form
// "35 MB (36,700,160 bytes)", so output can be fed back in.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	if strings.EqualFold(t, "unlimited") {
		return Unlimited, nil
	}
	// The printed form rounds the unit value; the byte count in
	// parentheses is exact, so that is what is read back.
	if i := strings.IndexByte(t, '('); i > 0 && strings.HasSuffix(t, " bytes)") {
		t = strings.TrimSpace(t[i+1 : len(t)-len(" bytes)")])
	}
	num, unit := splitUnit(t)
	if num == "" {
		return 0, sizeErr(s)
	}
	mult := int64(-1)
	for _, u := range sizeUnits {
		if strings.EqualFold(unit, u.name) {
			mult = u.bytes
		}
	}
	if unit == "" {
		mult = 1
	}
	if mult < 0 {
		return 0, sizeErr(s)
	}
	r, ok := new(big.Rat).SetString(strings.ReplaceAll(num, ",", ""))
	if !ok || r.Sign() < 0 {
		return 0, sizeErr(s)
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	// Round up to a whole KB: Exchange stores the limit in KB.
	kbs := new(big.Rat).Quo(r, big.NewRat(kb, 1))
	q := new(big.Int).Quo(kbs.Num(), kbs.Denom())
	if new(big.Rat).SetInt(q).Cmp(kbs) < 0 {
		q.Add(q, big.NewInt(1))
	}
	if !q.IsInt64() || q.Int64() > int64(MaxByteSize)/kb {
		return 0, ruleErr("InvalidMaxMessageSize", "size %q is larger than the maximum 2147483647 KB", strings.TrimSpace(s))
	}
	return ByteSize(q.Int64() * kb), nil
}

func sizeErr(s string) error {
	return ruleErr("InvalidMaxMessageSize", "size %q is not a number with an optional unit B, KB, MB, GB or TB, or Unlimited", strings.TrimSpace(s))
}

// splitUnit splits "35MB", "35 MB" or "1.5 gb" into number and unit.
func splitUnit(s string) (num, unit string) {
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' && r != ',' })
	if i < 0 {
		return s, ""
	}
	return strings.TrimSpace(s[:i]), strings.TrimSpace(s[i:])
}

// MarshalJSON writes the number of bytes, or the string "Unlimited".
func (s ByteSize) MarshalJSON() ([]byte, error) {
	if s.IsUnlimited() {
		return []byte(`"Unlimited"`), nil
	}
	return []byte(strconv.FormatInt(int64(s), 10)), nil
}

func (s *ByteSize) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err == nil {
		v, err := ParseByteSize(str)
		*s = v
		return err
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	v, err := ParseByteSize(strconv.FormatInt(n, 10))
	*s = v
	return err
}
