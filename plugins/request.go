package plugins

import (
	"context"
	"fmt"

	"github.com/tracebroker/tracebroker/broker"
)

// GenerateRequest runs generator name with params and makes req run
// what it generated: its script as Source, or its eBPF as
// Generator.Program. It lives here, not in broker, so that the pipeline
// does not link go-plugin and gRPC for the runs that use no plugin.
func (h *Host) GenerateRequest(ctx context.Context, name string, params map[string]string, req *broker.Request) error {
	g, err := h.Generate(ctx, name, params)
	if err != nil {
		return err
	}
	gen := &broker.Generator{Name: g.Info.Name, Version: g.Info.Version, Identity: g.Plugin.Identity, Params: g.Params, Fixed: g.Info.Fixed}
	req.Name, req.Source = "gen:"+name, nil
	if g.Output.Script != "" {
		req.Source = []byte(g.Output.Script)
	} else if gen.Program, err = g.RawProgram(); err != nil {
		return fmt.Errorf("plugin %s: %w", name, err)
	}
	req.Generator = gen
	return nil
}
