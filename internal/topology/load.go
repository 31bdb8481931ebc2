package topology

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// MaxFileSize bounds a topology file.
const MaxFileSize = 1 << 20

// Parse decodes a topology strictly: unknown keys, duplicate keys and a
// second YAML document are errors. It fills no defaults and reads no
// environment.
func Parse(r io.Reader) (*Topology, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read topology: %w", err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("topology is larger than %d bytes", MaxFileSize)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var t Topology
	if err := dec.Decode(&t); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("topology is empty")
		}
		return nil, fmt.Errorf("parse topology: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("parse topology: more than one YAML document")
	}
	return &t, nil
}

// Load reads, parses, expands secrets, fills defaults and validates the
// file at path. getenv resolves ${ENV} references (os.Getenv when nil).
func Load(path string, getenv func(string) string) (*Topology, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	t, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	abs, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	t.Dir = abs
	if getenv == nil {
		getenv = os.Getenv
	}
	if err := t.ExpandSecrets(getenv); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	t.Default()
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// ExpandSecrets resolves ${ENV} references in every Secret field. A
// reference to an unset or empty variable is an error naming the field.
func (t *Topology) ExpandSecrets(getenv func(string) string) error {
	var problems Problems
	walkSecrets(reflect.ValueOf(t).Elem(), "", func(field string, s *Secret) {
		var missing []string
		s.val = envRef.ReplaceAllStringFunc(s.ref, func(m string) string {
			name := envRef.FindStringSubmatch(m)[1]
			v := getenv(name)
			if v == "" {
				missing = append(missing, name)
			}
			return v
		})
		for _, name := range missing {
			problems.add(field, "environment variable %s is not set", name)
		}
	})
	return problems.err()
}

var secretType = reflect.TypeFor[Secret]()

// walkSecrets calls fn for every Secret reachable from v, with its field path.
func walkSecrets(v reflect.Value, path string, fn func(string, *Secret)) {
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == secretType {
			fn(path, v.Addr().Interface().(*Secret))
			return
		}
		for i := range v.NumField() {
			f := v.Type().Field(i)
			name := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if !f.IsExported() || name == "-" {
				continue
			}
			walkSecrets(v.Field(i), join(path, name), fn)
		}
	case reflect.Slice:
		for i := range v.Len() {
			walkSecrets(v.Index(i), fmt.Sprintf("%s[%d]", path, i), fn)
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			// Map values are not addressable: copy, walk, store back.
			cp := reflect.New(v.Type().Elem()).Elem()
			cp.Set(iter.Value())
			walkSecrets(cp, join(path, fmt.Sprint(iter.Key())), fn)
			v.SetMapIndex(iter.Key(), cp)
		}
	case reflect.Pointer:
		if !v.IsNil() {
			walkSecrets(v.Elem(), path, fn)
		}
	}
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// Problem is one validation failure.
type Problem struct {
	Field  string // e.g. regions[1].backends.gpt-4.1-mini[0].url
	Reason string
}

func (p Problem) String() string { return p.Field + ": " + p.Reason }

// Problems is every validation failure of a topology; it is the error
// Validate and ExpandSecrets return.
type Problems []Problem

func (ps Problems) Error() string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	if len(s) == 1 {
		return "invalid topology: " + s[0]
	}
	return "invalid topology:\n  " + strings.Join(s, "\n  ")
}

func (ps *Problems) add(field, format string, a ...any) {
	*ps = append(*ps, Problem{Field: field, Reason: fmt.Sprintf(format, a...)})
}

func (ps Problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return ps
}
