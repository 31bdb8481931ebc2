package agents

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Definition is an agent kept as code: one file per agent.
type Definition struct {
	// Name is how clients refer to the agent (agent_reference.name). Required.
	Name string `json:"name" yaml:"name"`
	// Model is a deployment name from the topology. Required.
	Model string `json:"model" yaml:"model"`
	// Instructions are the system instructions of every turn.
	Instructions string `json:"instructions,omitempty" yaml:"instructions"`
	// Tools are function tools the model may call; the client runs them.
	Tools []Tool `json:"tools,omitempty" yaml:"tools"`
	// Metadata: "version" is required; "owner" and others are free-form.
	Metadata map[string]string `json:"metadata,omitempty" yaml:"metadata"`

	// File is where the definition was read from (Parse's file); it is
	// not part of the content or the hash.
	File string `json:"-" yaml:"-"`
}

// Tool is a function tool in the Responses API shape.
type Tool struct {
	Type        string         `json:"type" yaml:"type"` // "function"
	Name        string         `json:"name" yaml:"name"`
	Description string         `json:"description,omitempty" yaml:"description"`
	Parameters  map[string]any `json:"parameters,omitempty" yaml:"parameters"`
	Strict      *bool          `json:"strict,omitempty" yaml:"strict"`
}

// Version returns metadata.version.
func (d *Definition) Version() string { return d.Metadata["version"] }

// Hash is the hex SHA-256 of the definition's canonical JSON (keys sorted,
// no insignificant space): equal definitions have equal hashes whatever
// the file's format, order or comments.
func (d *Definition) Hash() string {
	data, err := json.Marshal(d) // maps marshal with sorted keys
	if err != nil {
		panic(err) // a Definition always marshals
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

var (
	agentNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	toolNameRE  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
)

// FileError is a problem in one definition file, naming the field.
type FileError struct {
	File, Field, Reason string
}

func (e *FileError) Error() string {
	if e.Field == "" {
		return e.File + ": " + e.Reason
	}
	return e.File + ": " + e.Field + ": " + e.Reason
}

// Parse decodes one definition strictly (YAML, of which JSON is a subset):
// unknown keys are errors.
func Parse(file string, data []byte) (*Definition, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var d Definition
	if err := dec.Decode(&d); err != nil {
		return nil, &FileError{File: file, Reason: err.Error()}
	}
	d.File = file
	// YAML decodes nested maps as map[string]any already; normalise numbers
	// and nested values through JSON so hashes match the JSON form.
	for i := range d.Tools {
		if d.Tools[i].Parameters != nil {
			raw, err := json.Marshal(d.Tools[i].Parameters)
			if err != nil {
				return nil, &FileError{File: file, Field: fmt.Sprintf("tools[%d].parameters", i), Reason: err.Error()}
			}
			var norm map[string]any
			json.Unmarshal(raw, &norm)
			d.Tools[i].Parameters = norm
		}
	}
	return &d, nil
}

// Validate checks a definition against the deployments it may use.
func (d *Definition) Validate(file string, deployments []string) error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, &FileError{File: file, Field: field, Reason: fmt.Sprintf(format, a...)})
	}
	if !agentNameRE.MatchString(d.Name) {
		bad("name", "%q must be letters, digits, '.', '_' or '-' (at most 63)", d.Name)
	}
	switch {
	case d.Model == "":
		bad("model", "required: a deployment name")
	case !slices.Contains(deployments, d.Model):
		bad("model", "unknown deployment %q (known: %s)", d.Model, strings.Join(deployments, ", "))
	}
	if d.Version() == "" {
		bad("metadata.version", "required")
	}
	seen := map[string]bool{}
	for i, t := range d.Tools {
		f := fmt.Sprintf("tools[%d]", i)
		if t.Type != "function" {
			bad(f+".type", "%q is not supported (want function)", t.Type)
		}
		if !toolNameRE.MatchString(t.Name) {
			bad(f+".name", "%q must be 1-64 letters, digits, '_' or '-'", t.Name)
		} else if seen[t.Name] {
			bad(f+".name", "duplicate tool %q", t.Name)
		}
		seen[t.Name] = true
		if t.Parameters != nil {
			if err := checkSchema(t.Parameters); err != "" {
				bad(f+".parameters", "%s", err)
			}
		}
	}
	return errors.Join(errs...)
}

// checkSchema does the checks a model provider would reject a tool for:
// an object schema whose required names are declared properties.
func checkSchema(s map[string]any) string {
	if s["type"] != "object" {
		return `must be a JSON schema with "type": "object"`
	}
	props := map[string]any{}
	if p, ok := s["properties"]; ok {
		if props, ok = p.(map[string]any); !ok {
			return "properties must be an object"
		}
	}
	for name, p := range props {
		if _, ok := p.(map[string]any); !ok {
			return fmt.Sprintf("properties.%s must be a schema object", name)
		}
	}
	if r, ok := s["required"]; ok {
		list, ok := r.([]any)
		if !ok {
			return "required must be a list of property names"
		}
		for _, n := range list {
			name, ok := n.(string)
			if !ok {
				return "required must be a list of property names"
			}
			if _, ok := props[name]; !ok {
				return fmt.Sprintf("required names %q, which is not in properties", name)
			}
		}
	}
	return ""
}

// LoadDir reads every *.yaml, *.yml and *.json file in dir, validates each
// against deployments and rejects duplicate names across files. Errors
// name the file and the field; all are reported at once.
func LoadDir(dir string, deployments []string) ([]*Definition, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("agents directory: %w", err)
	}
	var defs []*Definition
	var errs []error
	byName := map[string]string{}
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		if e.IsDir() || (ext != ".yaml" && ext != ".yml" && ext != ".json") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		d, err := Parse(path, data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := d.Validate(path, deployments); err != nil {
			errs = append(errs, err)
			continue
		}
		if other, dup := byName[d.Name]; dup {
			errs = append(errs, &FileError{File: path, Field: "name", Reason: fmt.Sprintf("agent %q is also defined in %s", d.Name, other)})
			continue
		}
		byName[d.Name] = path
		defs = append(defs, d)
	}
	sort.Slice(defs, func(i, j int) bool { return defs[i].Name < defs[j].Name })
	return defs, errors.Join(errs...)
}
