package plugins

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/tracebroker/tracebroker/internal/escape"
	"github.com/tracebroker/tracebroker/plugins/sdk"
)

// Bounds on a plugin's description. A description is the plugin's own
// word, shown to whoever lists or describes it and used to check
// --param: a signed plugin is still not trusted to flood a terminal or
// the host's memory through it.
const (
	maxParams      = 64
	maxParamName   = 64
	maxVersionLen  = 64
	maxDescription = 1024 // Description and each Help
	maxDefaultLen  = 1024
)

// Describe verifies plugin name of Dir and, only when it verifies,
// starts it to describe itself. The description has been checked
// (checkInfo): bounded, with identifier names and known types.
func (h *Host) Describe(ctx context.Context, name string) (Plugin, error) {
	if err := h.checkName(name); err != nil {
		return Plugin{Name: name}, err
	}
	p, err := h.verify(name)
	if err != nil {
		return p, err
	}
	var info sdk.Info
	err = h.run(ctx, &p, func(ctx context.Context, c *call) error {
		var err error
		info, err = c.describe(ctx)
		return err
	})
	if err != nil {
		return p, err
	}
	p.Info = &info
	return p, nil
}

// Description is a described plugin as `plugins describe --json` prints
// it. Its text is the plugin's own: JSON escapes it.
type Description struct {
	Name        string             `json:"name"`
	Version     string             `json:"version"`
	Description string             `json:"description"`
	Signer      string             `json:"signer"`
	Params      []ParamDescription `json:"params"`
}

// ParamDescription is one parameter of a Description.
type ParamDescription struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Required bool   `json:"required"`
	Default  string `json:"default,omitempty"`
	Help     string `json:"help,omitempty"`
}

// Describe is p's Description; p.Info must be set (Host.Describe).
func (p Plugin) Describe() Description {
	d := Description{Name: p.Name, Signer: p.Identity.Signer, Params: []ParamDescription{}}
	if p.Info == nil {
		return d
	}
	d.Version, d.Description = p.Info.Version, p.Info.Description
	for _, pr := range p.Info.Params {
		d.Params = append(d.Params, ParamDescription{
			Name: pr.Name, Type: string(paramType(pr)), Required: pr.Required, Default: pr.Default, Help: pr.Help,
		})
	}
	return d
}

// paramType is p's type; an undeclared one is a string.
func paramType(p sdk.Param) sdk.ParamType {
	if p.Type == "" {
		return sdk.String
	}
	return p.Type
}

// WriteText prints d for a terminal: what the plugin is, a table of its
// parameters in the order it declares them, and the command line that
// runs it. Everything the plugin said is escaped (escape.String): it
// stays in its line and column and cannot drive the terminal.
func (d Description) WriteText(w io.Writer, command string) error {
	e := escape.String
	head := e(d.Name)
	if d.Version != "" {
		head += " " + e(d.Version)
	}
	if d.Signer != "" {
		head += " (signed by " + signerShort(d.Signer) + ")"
	}
	fmt.Fprintln(w, head)
	if d.Description != "" {
		fmt.Fprintln(w, e(d.Description))
	}
	if len(d.Params) == 0 {
		fmt.Fprintln(w, "\nIt takes no parameters.")
	} else {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PARAMETER\tTYPE\tREQUIRED\tDEFAULT\tHELP")
		for _, p := range d.Params {
			req, def := "no", "-"
			if p.Required {
				req = "yes"
			}
			if p.Default != "" {
				def = e(p.Default)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e(p.Name), e(p.Type), req, def, e(p.Help))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(w, "\nUsage:\n  %s\n", d.Usage(command))
	return err
}

// Usage is the command line that runs the plugin: command (e.g.
// "tracebroker run"), --gen NAME, the required parameters and the
// others in brackets.
func (d Description) Usage(command string) string {
	parts := []string{command, "--gen", escape.String(d.Name)}
	for _, p := range d.Params {
		arg := "--param " + escape.String(p.Name) + "=" + strings.ToUpper(escape.String(p.Type))
		if !p.Required || p.Default != "" {
			arg = "[" + arg + "]"
		}
		parts = append(parts, arg)
	}
	return strings.Join(parts, " ")
}

// signerShort is the signer's key id as `plugins list` shows it.
func signerShort(s string) string {
	if len(s) > 16 {
		s = s[:16]
	}
	return escape.String(s)
}
