//js
new Promise(() => {})
