// Package plugins will hold the hashicorp/go-plugin protocol and SDK for
// generator plugins and the example generators. Not built yet: see the
// plugins issue.
package plugins
