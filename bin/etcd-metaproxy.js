#!/usr/bin/env node
// Entry point of the built CLI (`npm run build` writes dist/).
import { main } from '../dist/cli/main.js';

// Exit explicitly: after shutdown nothing may keep the process alive.
process.exit(await main(process.argv.slice(2)));
