package plan

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// goldenCases cover one decision of each pattern; the files under testdata
// are what a reader gets for them.
var goldenCases = []struct {
	name string
	in   Inputs
}{
	{"hot-warm-stateful-datazone", inputs(5*time.Minute, 0, BudgetMedium, stateful, residency(ResidencyDataZone))},
	{"hot-hot-low-budget-stateful", inputs(5*time.Second, 0, BudgetLow, stateful)},
	{"hot-cold-region", inputs(8*time.Hour, time.Hour, BudgetLow, residency(ResidencyRegion),
		regions("westeurope", "northeurope"), func(in *Inputs) { in.Name = "claims-bot" })},
}

func TestGolden(t *testing.T) {
	for _, tc := range goldenCases {
		d := Decide(tc.in)
		for _, out := range []struct {
			suffix string
			render func(io.Writer, *Decision) error
		}{{"report", Report}, {"design", Design}, {"topology", Topology}} {
			t.Run(tc.name+"/"+out.suffix, func(t *testing.T) {
				var got bytes.Buffer
				if err := out.render(&got, d); err != nil {
					t.Fatal(err)
				}
				path := filepath.Join("testdata", tc.name+"."+out.suffix+".golden")
				if *update {
					if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run go test ./internal/plan -run TestGolden -update)", err)
				}
				if !bytes.Equal(got.Bytes(), want) {
					t.Errorf("%s differs from the output; if the change is intended, run go test ./internal/plan -run TestGolden -update and review the diff.\n--- got\n%s", path, got.String())
				}
			})
		}
	}
}
