//js
for (let i = 0; i < 1e6; i++) console.log("line " + i);
