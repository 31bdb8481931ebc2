// Package dashboard is the live web page of a topology, served by the
// controller at / from assets embedded in the binary (plain HTML, CSS and
// JavaScript: no build step, no CDN).
//
// The page polls one aggregate endpoint, GET /v1/dashboard/state, every
// second: the controller's status (roles, epochs, readiness, replication
// lag, the runbook's steps with RTO and RPO) beside what the dashboard
// gathers itself in a background loop while someone watches: the edge's
// origins and the requests per second each region answers (from the
// edge's own request counter, so every client counts, not only the demo's
// load), the edge's recent events (followed over its SSE stream), the
// processes `up` runs (from up.json and up's control API) and drift
// verdicts when the controller has a readiness check. Polling, not SSE,
// because a browser's EventSource cannot send the Authorization header the
// admin API needs.
//
// Actions go through the same admin API: take a region down and bring it
// back (proxied to up's control API), fail over, fail back, approve, and
// run a drill (`understudy drill` started as a child process, so the
// controller never imports the drill code and a drill that crashes cannot
// take the controller with it).
//
// The page authenticates with the admin token, kept in the tab's
// sessionStorage. It gets the token by redeeming a one-time code carried in
// the URL fragment (never sent to a server, stripped from the address bar
// at once), or pasted by the operator. Every route that changes anything
// is behind http.CrossOriginProtection, so another site's page cannot
// drive it from the operator's browser.
package dashboard
