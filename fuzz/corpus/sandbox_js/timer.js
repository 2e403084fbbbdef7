//js
await new Promise(r => setTimeout(r, 1000)); "done"
