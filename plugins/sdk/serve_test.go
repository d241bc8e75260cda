package sdk

import (
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	generatorpb "github.com/tracebroker/tracebroker/plugins/sdk/proto"
)

type fakeGen struct {
	info Info
	gen  func(Params) (Output, error)
}

func (f fakeGen) Describe() (Info, error) { return f.info, nil }

func (f fakeGen) Generate(_ context.Context, p Params) (Output, error) { return f.gen(p) }

func generate(t *testing.T, gen func(Params) (Output, error), params map[string]string) (*generatorpb.GenerateResponse, *status.Status) {
	t.Helper()
	s := &server{g: fakeGen{gen: gen}}
	resp, err := s.Generate(context.Background(), &generatorpb.GenerateRequest{Params: params})
	if err == nil {
		return resp, nil
	}
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("error %v is not a gRPC status", err)
	}
	return nil, st
}

func TestServerGenerate(t *testing.T) {
	resp, st := generate(t, func(p Params) (Output, error) {
		pid, _, err := p.Int("pid")
		if err != nil {
			return Output{}, err
		}
		if pid != 42 {
			t.Errorf("pid %d", pid)
		}
		return Output{Script: "BEGIN { exit(); }"}, nil
	}, map[string]string{"pid": "42"})
	if st != nil || resp.GetScript() != "BEGIN { exit(); }" {
		t.Errorf("response %v, status %v", resp, st)
	}

	resp, st = generate(t, func(Params) (Output, error) {
		return Output{Program: &Program{
			Probes: []Probe{{Kind: "BEGIN", Name: "BEGIN", Insns: make([]byte, 8), MapRefs: map[uint32]string{0: "m"}}},
			Maps:   []Map{{Name: "m", Type: "Hash", KeySize: 8, ValueSize: 8, MaxEntries: 1}},
			Schema: []byte("{}"),
		}}, nil
	}, nil)
	if p := resp.GetProgram(); st != nil || p == nil || len(p.Probes) != 1 || p.Probes[0].MapRefs[0] != "m" || p.Maps[0].Type != "Hash" || string(p.SchemaJson) != "{}" {
		t.Errorf("response %v, status %v", resp, st)
	}
}

func TestServerGenerateErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		gen  func(Params) (Output, error)
		code codes.Code
		want string
	}{
		{"author's error", func(Params) (Output, error) { return Output{}, errors.New("no such pid") }, codes.Unknown, "no such pid"},
		{"empty", func(Params) (Output, error) { return Output{}, nil }, codes.InvalidArgument, "Output is empty"},
		{"both", func(Params) (Output, error) { return Output{Script: "x", Program: &Program{}}, nil }, codes.InvalidArgument, "both a Script and a Program"},
		{"panic", func(Params) (Output, error) { panic("kaboom") }, codes.Internal, "generator panicked in Generate: kaboom (at github.com/tracebroker/tracebroker/plugins/sdk.TestServerGenerateErrors"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, st := generate(t, tc.gen, nil)
			if st == nil || st.Code() != tc.code || !strings.Contains(st.Message(), tc.want) {
				t.Errorf("status %v, want %s containing %q", st, tc.code, tc.want)
			}
		})
	}
}

func TestServerDescribe(t *testing.T) {
	s := &server{g: fakeGen{info: Info{Name: "x", Version: "1", Description: "d", Params: []Param{{Name: "pid", Type: Int, Default: "1", Help: "h", Required: true}}}}}
	info, err := s.Describe(context.Background(), &generatorpb.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	p := info.GetParams()
	if info.GetName() != "x" || info.GetVersion() != "1" || info.GetDescription() != "d" || len(p) != 1 ||
		p[0].GetName() != "pid" || p[0].GetType() != "int" || p[0].GetDefault() != "1" || p[0].GetHelp() != "h" || !p[0].GetRequired() {
		t.Errorf("info %v", info)
	}
}
