// PM2: `pm2 start ecosystem.config.cjs`, then `pm2 stop app` or
// `pm2 reload app`. PM2 stops a process with SIGINT, then SIGKILL after
// kill_timeout: 1600 ms unless set, which cuts a drain (drainTimeout 10 s +
// hooksTimeout 5 s by default). kill_timeout must be above the drain budget.
// In fork mode (the only mode for Deno) `pm2 reload` is a stop, then a start:
// in-flight requests finish, but new connections are refused in between.
// For restarts without that gap, run restart.ts under PM2 and send it SIGHUP
// (`pm2 sendSignal SIGHUP app`): see docs/launchers.md.
module.exports = {
  apps: [{
    name: "app",
    script: "server.ts",
    interpreter: "deno",
    // --allow-env for these three lets the server say at start whether
    // kill_timeout covers its drain.
    interpreter_args:
      "run --allow-net --allow-env=pm_id,kill_timeout,kill_signal",
    args: "--port 8080",
    kill_timeout: 20000,
  }],
};
