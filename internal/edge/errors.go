package edge

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/understudy/understudy/internal/oaierr"
)

// writeError writes an OpenAI-shaped error (oaierr). The message never
// carries addresses or internal errors, only region names and reasons.
// Every call names a code, so code is never null in what the edge sends.
func writeError(w http.ResponseWriter, status int, typ, code, msg string) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	oaierr.Write(w, status, oaierr.Marshal(status, typ, code, "", msg), 0)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		writeError(w, http.StatusInternalServerError, "server_error", "encode", "could not encode the answer")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }
