package plugins

import (
	"os"
	"strings"
	"testing"
)

// TestREADMEQuotesTemplate: the README's template plugin is the file that
// TestPluginAuthor builds in a module of its own, so what a plugin author
// copies from the README is what was tested.
func TestREADMEQuotesTemplate(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("sdk/example/opencount/main.go")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "```go\n"+string(src)+"```\n") {
		t.Error("README.md does not quote plugins/sdk/example/opencount/main.go verbatim in a go block; paste the file there")
	}
}
