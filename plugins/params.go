package plugins

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tracebroker/tracebroker/plugins/sdk"
)

// checkInfo refuses a description the host cannot act on. The name must
// be the file's: scopes (gen:NAME) and the CLI (--gen NAME) name a
// plugin by its file, and a signed binary must not pass for another by
// being renamed.
func checkInfo(file string, info sdk.Info) error {
	if info.Name != file {
		return fmt.Errorf("plugin %s describes itself as %s: a generator's file must be named as its Info.Name", file, bound(strconv.Quote(info.Name), 80))
	}
	if len(info.Params) > maxParams {
		return fmt.Errorf("plugin %s: bad description: %d parameters (at most %d)", file, len(info.Params), maxParams)
	}
	seen := map[string]bool{}
	var errs []error
	if len(info.Version) > maxVersionLen || len(info.Description) > maxDescription {
		errs = append(errs, fmt.Errorf("its version or description is too long (at most %d and %d bytes)", maxVersionLen, maxDescription))
	}
	for _, p := range info.Params {
		switch {
		case !isIdentifier(p.Name):
			errs = append(errs, fmt.Errorf("parameter name %s is not an identifier (a letter or _, then letters, digits, _ or -, at most %d bytes)", bound(strconv.Quote(p.Name), 80), maxParamName))
			continue
		case len(p.Help) > maxDescription || len(p.Default) > maxDefaultLen:
			errs = append(errs, fmt.Errorf("parameter %s: its help or default is too long (at most %d bytes)", p.Name, maxDescription))
			continue
		case seen[p.Name]:
			errs = append(errs, fmt.Errorf("parameter %s is declared twice", p.Name))
			continue
		}
		seen[p.Name] = true
		switch p.Type {
		case "", sdk.String, sdk.Int, sdk.Bool, sdk.Duration:
		default:
			errs = append(errs, fmt.Errorf("parameter %s has unknown type %s (string, int, bool, duration)", p.Name, bound(strconv.Quote(string(p.Type)), 80)))
			continue
		}
		if p.Default != "" {
			if err := checkValue(p, p.Default); err != nil {
				errs = append(errs, fmt.Errorf("its default: %w", err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("plugin %s: bad description: %w", file, err)
	}
	return nil
}

// checkValue checks v against p's type, as sdk.Params parses it.
func checkValue(p sdk.Param, v string) error {
	var err error
	switch p.Type {
	case sdk.Int:
		if _, err = strconv.ParseInt(v, 0, 64); err != nil {
			return fmt.Errorf("parameter %s: %q is not an integer", p.Name, v)
		}
	case sdk.Bool:
		if _, err = strconv.ParseBool(v); err != nil {
			return fmt.Errorf("parameter %s: %q is not a boolean (true, false, 1, 0)", p.Name, v)
		}
	case sdk.Duration:
		if _, err = time.ParseDuration(v); err != nil {
			return fmt.Errorf("parameter %s: %q is not a duration (500ms, 5s, 1m)", p.Name, v)
		}
	}
	return nil
}

// checkParams checks the given parameters against info's declarations
// and returns them completed with the defaults.
func checkParams(name string, info sdk.Info, given map[string]string) (map[string]string, error) {
	decl := map[string]sdk.Param{}
	for _, p := range info.Params {
		decl[p.Name] = p
	}
	out := make(map[string]string, len(info.Params))
	var errs []error
	var unknown []string
	keys := slices.Sorted(maps.Keys(given))
	for _, k := range keys {
		v := given[k]
		p, ok := decl[k]
		if !ok {
			unknown = append(unknown, k)
			continue
		}
		if err := checkValue(p, v); err != nil {
			errs = append(errs, err)
			continue
		}
		out[k] = v
	}
	if len(unknown) > 0 {
		what := "no parameter"
		if len(unknown) > 1 {
			what = "no parameters"
		}
		errs = append([]error{fmt.Errorf("%s %s (%s)", what, quoteJoin(unknown), knownParams(info))}, errs...)
	}
	for _, p := range info.Params {
		if _, ok := given[p.Name]; ok {
			continue
		}
		switch {
		case p.Default != "":
			out[p.Name] = p.Default
		case p.Required:
			help := ""
			if p.Help != "" {
				help = ": " + p.Help
			}
			errs = append(errs, fmt.Errorf("parameter %s is required%s", p.Name, help))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("plugin %s: %w", name, errors.Join(errs...))
	}
	return out, nil
}

func quoteJoin(s []string) string {
	q := make([]string, len(s))
	for i, x := range s {
		q[i] = strconv.Quote(x)
	}
	return strings.Join(q, ", ")
}

// isIdentifier reports whether s may name a parameter: it is typed as
// --param NAME=VALUE and shown in tables, so it is a plain word.
func isIdentifier(s string) bool {
	if s == "" || len(s) > maxParamName {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z':
		case i > 0 && (r == '-' || '0' <= r && r <= '9'):
		default:
			return false
		}
	}
	return true
}
