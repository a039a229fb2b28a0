#!/usr/bin/env node
import { main } from '../dist/src/cli/cli.js';

main();
