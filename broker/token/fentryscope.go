package token

import (
	"fmt"
	"strings"
)

// checkFuncScope refuses a kfunc:/kretfunc: pattern written the way a
// script names the function (probe:kfunc:vfs_read): probe names always
// carry the module (kfunc:vmlinux:vfs_read), so such a pattern would
// grant nothing, or only functions of a module of that name.
func checkFuncScope(p string) error {
	for _, typ := range []string{"kfunc:", "kretfunc:"} {
		rest, ok := strings.CutPrefix(p, typ)
		if !ok || strings.Contains(rest, ":") || strings.HasPrefix(rest, "*") {
			continue
		}
		return fmt.Errorf("scope %s names no module: %s probe names carry it (%svmlinux:vfs_read); write probe:%svmlinux:%s or probe:%s*:%s", quote("probe:"+p), strings.TrimSuffix(typ, ":"), typ, typ, rest, typ, rest)
	}
	return nil
}
