// Package protocol is what both ends of a generator plugin connection
// agree on: go-plugin's handshake (protocol version and magic cookie) and
// the go-plugin glue that puts the gRPC service of plugins/sdk/proto on
// the connection. The SDK (plugin side) and the host (plugins) import it;
// a plugin's author has no need to.
package protocol

import (
	"context"
	"errors"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	generatorpb "github.com/tracebroker/tracebroker/plugins/sdk/proto"
)

// ProtocolVersion is the generator protocol's version, the N of package
// tracebroker.generator.vN in generator.proto. go-plugin refuses a plugin
// whose version the host does not speak, before any call.
const ProtocolVersion = 1

// The magic cookie says "this process was started by tracebroker as a
// generator plugin". It is not a secret and not a security measure: it
// keeps a plugin started by hand (or by another go-plugin host) from
// waiting forever for a connection, with go-plugin's message instead.
const (
	MagicCookieKey   = "TRACEBROKER_GENERATOR_PLUGIN"
	MagicCookieValue = "5d0c1f0e8a4b4f2e9c7a3b61e2d94f70-tracebroker-generator"
)

// Handshake is the go-plugin handshake of every generator plugin.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   MagicCookieKey,
	MagicCookieValue: MagicCookieValue,
}

// PluginName is the one plugin each generator binary serves.
const PluginName = "generator"

// GRPCPlugin is the go-plugin plugin.GRPCPlugin for the generator
// service: on the plugin side Impl is the implementation to register;
// on the host side the dispensed value is a generatorpb.GeneratorClient.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl generatorpb.GeneratorServer
}

// GRPCServer registers the generator service.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return errors.New("generator plugin: no server implementation")
	}
	generatorpb.RegisterGeneratorServer(s, p.Impl)
	return nil
}

// GRPCClient returns a generatorpb.GeneratorClient on the connection.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return generatorpb.NewGeneratorClient(c), nil
}

// PluginSet is the plugin set of both ends; impl is nil on the host.
func PluginSet(impl generatorpb.GeneratorServer) plugin.PluginSet {
	return plugin.PluginSet{PluginName: &GRPCPlugin{Impl: impl}}
}
