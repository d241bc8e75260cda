package policyelf

import (
	"encoding/binary"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// mapDefs is the BTF description of the .maps section: what clang emits
// for libbpf-style map declarations.
type mapDefs struct {
	btf     []byte   // the .BTF section
	size    uint32   // of the .maps section (zeroes: a BTF map's definition is all in its type)
	offsets []uint32 // of each map's definition in .maps
	sizes   []uint32
}

// btfMaps describes each map as clang does
//
//	struct {
//		__uint(type, T);          // int (*type)[T]
//		__uint(key_size, K);      // or __type(key, KEY): KEY *key
//		__uint(value_size, V);    // or __type(value, VALUE): VALUE *value
//		__uint(max_entries, N);
//		__uint(map_flags, F);     // when F != 0
//	} NAME SEC(".maps");
//
// as a global Var in a ".maps" Datasec. The key and value are given by
// their BTF types when the spec has them (their sizes must agree), else by
// size.
func btfMaps(maps []*ebpf.MapSpec) (*mapDefs, error) {
	intT := &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed}
	index := &btf.Int{Name: "__ARRAY_SIZE_TYPE__", Size: 4}
	uintMember := func(name string, v uint32) btf.Member {
		return btf.Member{Name: name, Type: &btf.Pointer{Target: &btf.Array{Index: index, Type: intT, Nelems: v}}}
	}
	typeMember := func(name string, typ btf.Type, size uint32) (btf.Member, error) {
		n, err := btf.Sizeof(typ)
		if err != nil {
			return btf.Member{}, fmt.Errorf("%s type: %w", name, err)
		}
		if n != int(size) {
			return btf.Member{}, fmt.Errorf("%s type %v is %d bytes, but the spec says %d", name, typ, n, size)
		}
		return btf.Member{Name: name, Type: &btf.Pointer{Target: typ}}, nil
	}

	defs := &mapDefs{}
	sec := &btf.Datasec{Name: MapsSection}
	for _, ms := range maps {
		members := []btf.Member{uintMember("type", uint32(ms.Type))}
		for _, kv := range []struct {
			name string
			typ  btf.Type
			size uint32
		}{{"key", ms.Key, ms.KeySize}, {"value", ms.Value, ms.ValueSize}} {
			switch {
			case kv.typ != nil:
				m, err := typeMember(kv.name, kv.typ, kv.size)
				if err != nil {
					return nil, fmt.Errorf("policyelf: map %q: %w", ms.Name, err)
				}
				members = append(members, m)
			case kv.size != 0:
				members = append(members, uintMember(kv.name+"_size", kv.size))
			}
		}
		if ms.MaxEntries != 0 {
			members = append(members, uintMember("max_entries", ms.MaxEntries))
		}
		if ms.Flags != 0 {
			members = append(members, uintMember("map_flags", ms.Flags))
		}
		for i := range members {
			members[i].Offset = btf.Bits(64 * i) // pointers
		}
		size := uint32(8 * len(members))
		def := &btf.Struct{Size: size, Members: members} // anonymous, as in C
		sec.Vars = append(sec.Vars, btf.VarSecinfo{
			Type:   &btf.Var{Name: ms.Name, Type: def, Linkage: btf.GlobalVar},
			Offset: defs.size,
			Size:   size,
		})
		defs.offsets = append(defs.offsets, defs.size)
		defs.sizes = append(defs.sizes, size)
		defs.size += size
	}
	sec.Size = defs.size

	b, err := btf.NewBuilder([]btf.Type{sec}, nil)
	if err != nil {
		return nil, fmt.Errorf("policyelf: BTF: %w", err)
	}
	defs.btf, err = b.Marshal(nil, &btf.MarshalOptions{Order: binary.LittleEndian})
	if err != nil {
		return nil, fmt.Errorf("policyelf: BTF: %w", err)
	}
	return defs, nil
}
