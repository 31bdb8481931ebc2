package agents

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const good = `name: support-agent
model: gpt-4.1-mini
instructions: Be brief.
tools:
  - type: function
    name: get_order_status
    parameters:
      type: object
      properties:
        order_id: {type: string}
      required: [order_id]
metadata:
  version: "1"
  owner: platform
`

var deployments = []string{"gpt-4.1-mini"}

func TestValidateNamesFileAndField(t *testing.T) {
	tests := []struct {
		name, old, new, field string
	}{
		{"unknown deployment", "model: gpt-4.1-mini", "model: gpt-5", "model"},
		{"missing version", `  version: "1"`, `  release: "1"`, "metadata.version"},
		{"tool type", "- type: function", "- type: code_interpreter", "tools[0].type"},
		{"tool name", "name: get_order_status", "name: get order", "tools[0].name"},
		{"schema type", "      type: object", "      type: array", "tools[0].parameters"},
		{"required unknown", "required: [order_id]", "required: [order]", "tools[0].parameters"},
		{"agent name", "name: support-agent", "name: 'support agent'", "name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := strings.Replace(good, tt.old, tt.new, 1)
			d, err := Parse("a.yaml", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			err = d.Validate("a.yaml", deployments)
			if err == nil || !strings.Contains(err.Error(), "a.yaml: "+tt.field+": ") {
				t.Fatalf("error = %v, want one naming a.yaml and %s", err, tt.field)
			}
		})
	}
}

func TestParseRejectsUnknownKeys(t *testing.T) {
	_, err := Parse("a.yaml", []byte(good+"temperature: 0.2\n"))
	if err == nil || !strings.Contains(err.Error(), "temperature") {
		t.Fatalf("err = %v", err)
	}
}

func TestHashIgnoresFormatButNotContent(t *testing.T) {
	y, err := Parse("a.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	j, err := Parse("a.json", []byte(`{"metadata":{"owner":"platform","version":"1"},"name":"support-agent","model":"gpt-4.1-mini",
	  "instructions":"Be brief.","tools":[{"type":"function","name":"get_order_status",
	  "parameters":{"required":["order_id"],"properties":{"order_id":{"type":"string"}},"type":"object"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if y.Hash() != j.Hash() {
		t.Errorf("the same agent in YAML and JSON hashes differently")
	}
	changed, _ := Parse("a.yaml", []byte(strings.Replace(good, "Be brief.", "Be very brief.", 1)))
	if changed.Hash() == y.Hash() {
		t.Error("changed instructions kept the hash")
	}
}

func TestLoadDirRejectsDuplicates(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(good), 0o644)
	os.WriteFile(filepath.Join(dir, "b.yml"), []byte(good), 0o644)
	os.WriteFile(filepath.Join(dir, "README.md"), []byte("not an agent"), 0o644)
	_, err := LoadDir(dir, deployments)
	if err == nil || !strings.Contains(err.Error(), `b.yml: name: agent "support-agent" is also defined in`) {
		t.Fatalf("err = %v", err)
	}
	os.Remove(filepath.Join(dir, "b.yml"))
	defs, err := LoadDir(dir, deployments)
	if err != nil || len(defs) != 1 || defs[0].Version() != "1" {
		t.Fatalf("defs = %v, err = %v", defs, err)
	}
}
