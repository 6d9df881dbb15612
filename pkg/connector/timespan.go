package connector

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// TimeSpan is a duration printed the way Exchange prints it:
// "[d.]hh:mm:ss[.fffffffff]".
type TimeSpan time.Duration

// Duration converts to a time.Duration.
func (t TimeSpan) Duration() time.Duration { return time.Duration(t) }

func (t TimeSpan) String() string {
	d := time.Duration(t)
	sign := ""
	if d < 0 {
		sign, d = "-", -d
	}
	days := d / (24 * time.Hour)
	d -= days * 24 * time.Hour
	h := d / time.Hour
	d -= h * time.Hour
	m := d / time.Minute
	d -= m * time.Minute
	s := d / time.Second
	frac := d - s*time.Second
	out := fmt.Sprintf("%02d:%02d:%02d", h, m, s)
	if days > 0 {
		out = strconv.FormatInt(int64(days), 10) + "." + out
	}
	if frac > 0 {
		out += "." + strings.TrimRight(fmt.Sprintf("%09d", int64(frac)), "0")
	}
	return sign + out
}

// ParseTimeSpan reads Exchange's "[d.]hh:mm[:ss[.fraction]]", Go's duration
// syntax ("90s", "1h30m") and a days suffix ("2d", "1d12h"). Negative spans
// are refused: nothing in sendconn waits a negative time.
func ParseTimeSpan(s string) (TimeSpan, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, timeErr(s)
	}
	if strings.HasPrefix(t, "-") {
		return 0, ruleErr("InvalidTimeSpan", "time span %q is negative", t)
	}
	var d time.Duration
	var err error
	switch {
	case strings.Contains(t, ":"):
		d, err = parseClock(t)
	default:
		d, err = parseGoWithDays(t)
	}
	if err != nil {
		return 0, timeErr(s)
	}
	return TimeSpan(d), nil
}

func timeErr(s string) error {
	return ruleErr("InvalidTimeSpan", "time span %q is not [d.]hh:mm:ss, a Go duration such as 90s or 5m, or a day count such as 2d", strings.TrimSpace(s))
}

// parseClock reads [d.]hh:mm[:ss[.fraction]].
func parseClock(t string) (time.Duration, error) {
	var days int64
	colon := strings.IndexByte(t, ':')
	if dot := strings.IndexByte(t[:colon], '.'); dot >= 0 {
		n, err := strconv.ParseInt(t[:dot], 10, 64)
		if err != nil {
			return 0, err
		}
		days, t = n, t[dot+1:]
	}
	parts := strings.Split(t, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return 0, fmt.Errorf("bad clock")
	}
	h, err := clockField(parts[0], 23)
	if err != nil {
		return 0, err
	}
	m, err := clockField(parts[1], 59)
	if err != nil {
		return 0, err
	}
	var sec, frac int64
	if len(parts) == 3 {
		whole, fraction, hasFrac := strings.Cut(parts[2], ".")
		if sec, err = clockField(whole, 59); err != nil {
			return 0, err
		}
		if hasFrac {
			if fraction == "" || len(fraction) > 9 || strings.Trim(fraction, "0123456789") != "" {
				return 0, fmt.Errorf("bad fraction")
			}
			frac, _ = strconv.ParseInt((fraction + "000000000")[:9], 10, 64)
		}
	}
	if days > int64(1<<63-1)/int64(24*time.Hour)-1 {
		return 0, fmt.Errorf("too long")
	}
	return time.Duration(days)*24*time.Hour + time.Duration(h)*time.Hour +
		time.Duration(m)*time.Minute + time.Duration(sec)*time.Second + time.Duration(frac), nil
}

func clockField(s string, max int64) (int64, error) {
	if len(s) == 0 || len(s) > 2 || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("bad field")
	}
	n, _ := strconv.ParseInt(s, 10, 64)
	if n > max {
		return 0, fmt.Errorf("field out of range")
	}
	return n, nil
}

// parseGoWithDays reads a Go duration, optionally starting with "<n>d".
func parseGoWithDays(t string) (time.Duration, error) {
	var days int64
	if i := strings.IndexByte(t, 'd'); i > 0 {
		n, err := strconv.ParseInt(t[:i], 10, 64)
		if err != nil {
			return 0, err
		}
		if n > int64(1<<63-1)/int64(24*time.Hour)-1 {
			return 0, fmt.Errorf("too long")
		}
		days, t = n, t[i+1:]
		if t == "" {
			return time.Duration(days) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(t)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("bad duration")
	}
	total := time.Duration(days)*24*time.Hour + d
	if total < d {
		return 0, fmt.Errorf("too long")
	}
	return total, nil
}

func (t TimeSpan) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

func (t *TimeSpan) UnmarshalText(b []byte) error {
	v, err := ParseTimeSpan(string(b))
	*t = v
	return err
}

// MarshalJSON writes the Exchange string form, which stays readable in JSON.
func (t TimeSpan) MarshalJSON() ([]byte, error) { return json.Marshal(t.String()) }

func (t *TimeSpan) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	return t.UnmarshalText([]byte(s))
}
