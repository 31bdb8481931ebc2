# bench/ratios.awk: reads the output of ../shared/bench/anchors.sh and
# prints, after its summary, each extra target's added latency as a
# multiple of HAProxy's from the same run (added p50 / HAProxy's added
# p50, and the same for p99), so runs on machines of different speed can
# be compared. Used by bench/gateway.sh and bench/edge.sh.
/^# summary:/ { summary = 1; next }
summary && $1 ~ /^[0-9]+$/ && NF >= 6 {
  n++
  rate[n] = $1; name[n] = $2; p50[n] = $5; p99[n] = $6
  if ($2 == "haproxy") { h50[$1] = $5; h99[$1] = $6 }
}
function ratio(a, b) { return (b > 0 && a != "-") ? sprintf("%.2fx", a / b) : "-" }
END {
  if (!n) exit
  printf "\n# added latency as a multiple of HAProxy's in the same run\n"
  printf "%-6s %-12s %10s %10s\n", "rate", "target", "x_p50", "x_p99"
  for (i = 1; i <= n; i++) {
    if (name[i] == "direct" || name[i] == "haproxy" || name[i] == "nginx") continue
    printf "%-6s %-12s %10s %10s\n", rate[i], name[i], ratio(p50[i], h50[rate[i]]), ratio(p99[i], h99[rate[i]])
  }
}
