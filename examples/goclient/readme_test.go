package goclient_test

import (
	"bytes"
	"os"
	"testing"
)

// TestREADMEShowsClient: README.md shows client.go whole, as one go block,
// so what readers copy is what this package compiles and tests.
func TestREADMEShowsClient(t *testing.T) {
	client, err := os.ReadFile("client.go")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	block := append(append([]byte("```go\n"), client...), "```\n"...)
	if !bytes.Contains(readme, block) {
		t.Errorf("README.md has no go block equal to examples/goclient/client.go: copy the file into README.md's block again")
	}
}
