package topology

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

var topologyBlock = regexp.MustCompile("(?s)```yaml topology\n(.*?)```")

// Every ```yaml topology block in the docs and README must load.
func TestDocExamplesLoad(t *testing.T) {
	files, _ := filepath.Glob("../../docs/*.md")
	files = append(files, "../../README.md")
	n := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for i, m := range topologyBlock.FindAllSubmatch(data, -1) {
			n++
			t.Run(filepath.Base(f)+"#"+string(rune('0'+i)), func(t *testing.T) {
				if _, err := load(t, m[1], nil); err != nil {
					t.Errorf("%s example %d: %v", f, i, err)
				}
			})
		}
	}
	if n == 0 {
		t.Fatal("no ```yaml topology examples found in docs/")
	}
}

// docs/CONFIG.md must document every key of the file format.
func TestConfigDocCoversEveryKey(t *testing.T) {
	data, err := os.ReadFile("../../docs/CONFIG.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	var walk func(typ reflect.Type, prefix string)
	walk = func(typ reflect.Type, prefix string) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			name := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if name == "" || name == "-" {
				continue
			}
			ft := f.Type
			for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice || ft.Kind() == reflect.Map {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && ft != reflect.TypeFor[Secret]() {
				walk(ft, prefix+name+".")
				continue
			}
			// A key is documented when its table row names it as `key` or `section.key`.
			if !strings.Contains(doc, "`"+name+"`") && !strings.Contains(doc, "`"+prefix+name+"`") &&
				!strings.Contains(doc, "."+name+"`") {
				t.Errorf("docs/CONFIG.md does not document %s%s", prefix, name)
			}
		}
	}
	walk(reflect.TypeFor[Topology](), "")
}
